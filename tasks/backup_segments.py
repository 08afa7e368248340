"""Celery tasks: one segment of a bulk backup or restore job (the job record is in Redis).

``backup-segment`` (backup-table), ``backfill-segment`` (incremental-backfill) and
``restore-segment`` (restore-table from files, or point in time) all take the job id and the
segment number; the job's kind and parameters say what to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from tasks import logs
from tasks.backup_table import backup_work
from tasks.errors import TransientError
from tasks.incremental_backfill import backfill_work
from tasks.jobs import Job, JobStore, Progress, RedisJobStore, Work, run_segment
from tasks.redis_conn import connection
from tasks.restore import restore_files_work
from tasks.restore_pit import pit_work
from worker.app import app

log = logs.get("tasks")
WORK: dict[str, Callable[[Mapping[str, Any], int, int], Work]] = {
    "backup-table": backup_work,
    "incremental-backfill": backfill_work,
    "restore-table": restore_files_work,
    "restore-table-at": pit_work,
}
TASK_FOR_KIND = {
    "backup-table": "backup-segment",
    "incremental-backfill": "backfill-segment",
    "restore-table": "restore-segment",
    "restore-table-at": "restore-segment",
}


def run_here(
    store: JobStore, job: Job, segment: int, on_progress: Progress | None = None
) -> dict[str, int]:
    """Run one segment of a backup or restore job in this process."""
    work = WORK[job.kind](job.params, segment, job.segments)
    return run_segment(store, job, segment, work, on_progress)


def _run(task: Any, job_id: str, segment: int) -> dict[str, int]:
    """One delivery of a segment task; logs one summary line (counts, never items)."""
    started = time.monotonic()
    store = RedisJobStore(connection())
    job = store.load(job_id)

    def progress(counts: Mapping[str, int]) -> None:  # the task state Flower shows
        meta = {"job": job_id, "segment": segment, "segments": job.segments, **counts}
        task.update_state(state="PROGRESS", meta=meta)

    counts = run_here(store, job, segment, progress)
    log.info(
        job.kind,
        job=job_id,
        segment=segment,
        segments=job.segments,
        seconds=round(time.monotonic() - started, 3),
        **counts,
    )
    return counts


_OPTIONS: dict[str, Any] = {
    "autoretry_for": (TransientError,),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 10,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "bind": True,
}


@app.task(name="backup-segment", **_OPTIONS)
def backup_segment(self: Any, job_id: str, segment: int) -> dict[str, int]:
    """One segment of a backup-table job."""
    return _run(self, job_id, segment)


@app.task(name="backfill-segment", **_OPTIONS)
def backfill_segment(self: Any, job_id: str, segment: int) -> dict[str, int]:
    """One segment of an incremental-backfill job."""
    return _run(self, job_id, segment)


@app.task(name="restore-segment", **_OPTIONS)
def restore_segment(self: Any, job_id: str, segment: int) -> dict[str, int]:
    """One segment of a restore-table job."""
    return _run(self, job_id, segment)
