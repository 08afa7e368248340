"""Celery task: write the primary's current state of a batch of keys to the incremental backup."""

from __future__ import annotations

from typing import Any

from tasks.batches import TASK_OPTIONS, run_message
from tasks.incremental import S3Sink
from tasks.locations import parse_s3, parse_table
from worker.app import app


@app.task(name="backup-record", **TASK_OPTIONS)
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

    def sink() -> S3Sink:
        return S3Sink(parse_s3(target), parse_table(primary).table)

    return run_message(self, "backup", primary, target, sink, keys, created, session, attempt)
