"""Celery task: make the replica match the primary for a batch of keys."""

from __future__ import annotations

from typing import Any

import redis

from tasks.batches import run_batch
from tasks.errors import TransientError
from tasks.locations import parse_table
from tasks.sync import ReplicaSink
from worker.app import app


@app.task(
    name="replicate",
    bind=True,
    ignore_result=True,
    autoretry_for=(TransientError, redis.ConnectionError, redis.TimeoutError),
    retry_backoff=True,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=10,
    soft_time_limit=240,
    time_limit=300,
)
def replicate(
    self: Any,
    primary: str,
    replica: str,
    keys: list[dict[str, Any]],
    created: list[float] | None = None,
    session: str | None = None,
    attempt: int = 0,
) -> dict[str, int]:
    """Replicate ``keys`` (typed wire JSON) from ``primary`` to ``replica``."""

    def send(args: tuple[Any, ...], kwargs: dict[str, Any], countdown: float) -> None:
        self.app.send_task("replicate", args=args, kwargs=kwargs, countdown=countdown)

    return run_batch(
        "replicate",
        primary,
        replica,
        lambda: ReplicaSink(parse_table(replica)),
        keys,
        created,
        session,
        attempt,
        send,
        self.request.id,
    )
