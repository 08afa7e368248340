"""Celery task: make the replica match the primary for a batch of keys."""

from __future__ import annotations

import time
from typing import Any

from tasks import logs
from tasks.dynamo import Failure
from tasks.errors import NotFoundError, PermanentError, InvalidInputError, TransientError
from tasks.failures import settle
from tasks.locations import parse_table
from tasks.config import settings
from tasks.sync import ReplicaSink, sync_keys
from tasks.typed_json import canonical_json, from_wire, to_wire
from worker.app import app

log = logs.get("replicate")
PERMANENT = (NotFoundError, PermanentError, InvalidInputError)


@app.task(
    name="replicate",
    bind=True,
    ignore_result=True,
    autoretry_for=(TransientError,),
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
    started = time.monotonic()
    client_keys = [from_wire(k) for k in keys]
    source, target = parse_table(primary), parse_table(replica)
    try:
        outcome = sync_keys(
            source,
            ReplicaSink(target),
            client_keys,
            created or (),
            session,
            settings().guard_max_rounds,
        )
        failed = outcome.failed
        counts = outcome.counts()
    except PERMANENT as exc:
        failed = {canonical_json(k): Failure(str(exc), retryable=False) for k in client_keys}
        counts = {"failed": len(failed)}

    def retry(again: list[dict[str, Any]], countdown: float) -> None:
        self.app.send_task(
            "replicate",
            args=(primary, replica, [to_wire(k) for k in again]),
            kwargs={"attempt": attempt + 1},
            countdown=countdown,
        )

    retried, dead = settle("replicate", primary, replica, failed, attempt, retry)
    summary = {**counts, "keys": len(keys), "retried": retried, "dead_lettered": dead}
    log.info(
        "replicate",
        task_id=self.request.id,
        primary=primary,
        replica=replica,
        seconds=round(time.monotonic() - started, 3),
        **summary,
    )
    return summary
