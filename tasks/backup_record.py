"""Celery task: write the primary's current state of a batch of keys to the incremental backup."""

from __future__ import annotations

from typing import Any

from tasks.batches import run_batch
from tasks.errors import TransientError
from tasks.incremental import S3Sink
from tasks.locations import parse_s3, parse_table
from worker.app import app


@app.task(
    name="backup-record",
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
def backup_record(
    self: Any,
    primary: str,
    target: str,
    keys: list[dict[str, Any]],
    created: list[float] | None = None,
    session: str | None = None,
    attempt: int = 0,
) -> dict[str, int]:
    """Back up ``keys`` (typed wire JSON) of ``primary`` to ``target`` (s3://bucket/prefix)."""

    def send(args: tuple[Any, ...], kwargs: dict[str, Any], countdown: float) -> None:
        self.app.send_task("backup-record", args=args, kwargs=kwargs, countdown=countdown)

    def sink() -> S3Sink:
        return S3Sink(parse_s3(target), parse_table(primary).table)

    return run_batch(
        "backup", primary, target, sink, keys, created, session, attempt, send, self.request.id
    )
