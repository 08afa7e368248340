"""Celery tasks on the ``bulk`` queue: one segment of a bulk job (the job record is in Redis).

``diff-segment`` (diff-tables), ``backup-segment`` (backup-table), ``backfill-segment``
(incremental-backfill) and ``restore-segment`` (restore-table from files, or point in time) all
take the job id and the segment number; the job's kind (``tasks.kinds``) says what to do.
Progress goes to the task state (Flower shows it); the result is the segment's counts. A
redelivered task resumes from the segment's checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from tasks import names
from tasks.coord.redis_conn import connection
from tasks.core import logs
from tasks.core.backoff import delay
from tasks.core.config import settings
from tasks.core.errors import TransientError
from tasks.jobs.redis_store import RedisJobStore
from tasks.kinds import KINDS, described, run_here
from worker.app import app

log = logs.get("tasks")
MAX_RETRIES = 10


def progress_meta(
    job_id: str, segment: int, segments: int, counts: Mapping[str, int], rate: float
) -> dict[str, Any]:
    """The task state Flower shows while a segment runs."""
    meta: dict[str, Any] = {"job": job_id, "segment": segment, "segments": segments, **counts}
    if {"missing", "extraneous", "different"} & counts.keys() or "compared" in counts:
        meta["discrepancies"] = sum(
            counts.get(k, 0) for k in ("missing", "extraneous", "different")
        )
    meta["items_per_second"] = round(rate, 1)
    return meta


def _run(task: Any, job_id: str, segment: int) -> dict[str, int]:
    """One delivery of a segment task; logs one summary line (counts, never items)."""
    started = time.monotonic()
    store = RedisJobStore(connection())
    job = store.load(job_id)
    rate_field = KINDS[job.kind].rate_field

    def progress(counts: Mapping[str, int]) -> None:
        rate = counts.get(rate_field, 0) / max(time.monotonic() - started, 1e-6)
        task.update_state(
            state="PROGRESS", meta=progress_meta(job_id, segment, job.segments, counts, rate)
        )

    try:
        counts = run_here(store, job, segment, progress)
    except TransientError as exc:
        if task.request.retries >= MAX_RETRIES:
            store.finish(job_id, segment, error=str(exc))
            raise
        cfg = settings()
        countdown = delay(task.request.retries, cfg.task_backoff_base, cfg.task_backoff_cap)
        raise task.retry(exc=exc, countdown=countdown) from exc
    seconds = round(time.monotonic() - started, 3)
    log.info(task.name, job=job_id, segment=segment, seconds=seconds, **described(job), **counts)
    return counts


_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": MAX_RETRIES,
}


@app.task(name=names.DIFF_SEGMENT, **_OPTIONS)
def diff_segment(self: Any, job_id: str, segment: int) -> dict[str, int]:
    """One segment of a diff-tables job."""
    return _run(self, job_id, segment)


@app.task(name=names.BACKUP_SEGMENT, **_OPTIONS)
def backup_segment(self: Any, job_id: str, segment: int) -> dict[str, int]:
    """One segment of a backup-table job."""
    return _run(self, job_id, segment)


@app.task(name=names.BACKFILL_SEGMENT, **_OPTIONS)
def backfill_segment(self: Any, job_id: str, segment: int) -> dict[str, int]:
    """One segment of an incremental-backfill job."""
    return _run(self, job_id, segment)


@app.task(name=names.RESTORE_SEGMENT, **_OPTIONS)
def restore_segment(self: Any, job_id: str, segment: int) -> dict[str, int]:
    """One segment of a restore-table job."""
    return _run(self, job_id, segment)
