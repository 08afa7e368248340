"""Celery task ``diff-segment``: compare (repair, backfill) one scan segment of a bulk job.

Arguments are the job id and the segment; the tables and options are in the job record
(``tasks.jobs``). Progress goes to the task state (Flower shows it); the result is the segment's
counts. A redelivered task resumes from the segment's checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from tasks import logs
from tasks.backoff import delay
from tasks.config import settings
from tasks.diff import DiffOptions, segment_diff
from tasks.errors import TransientError
from tasks.jobs import RedisJobStore, run_segment
from tasks.redis_conn import connection
from worker.app import app

log = logs.get("tasks")
MAX_RETRIES = 10


def progress_meta(
    job_id: str, segment: int, counts: Mapping[str, int], started: float
) -> dict[str, Any]:
    elapsed = max(time.monotonic() - started, 1e-6)
    return {
        "job": job_id,
        "segment": segment,
        **counts,
        "discrepancies": sum(counts.get(k, 0) for k in ("missing", "extraneous", "different")),
        "items_per_second": round(counts.get("scanned", 0) / elapsed, 1),
    }


@app.task(
    name="diff-segment",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
)
def diff_segment(self: Any, job_id: str, segment: int) -> dict[str, int]:
    """Diff segment ``segment`` of job ``job_id``; returns the segment's counts."""
    store = RedisJobStore(connection())
    job = store.load(job_id)
    options = DiffOptions.from_params(job.params)
    started = time.monotonic()

    def progress(counts: Mapping[str, int]) -> None:
        self.update_state(state="PROGRESS", meta=progress_meta(job_id, segment, counts, started))

    try:
        counts = run_segment(
            store,
            job,
            segment,
            lambda checkpoint: segment_diff(options, segment, job.segments, job_id).work(
                checkpoint
            ),
            progress,
        )
    except TransientError as exc:
        if self.request.retries >= MAX_RETRIES:
            store.finish(job_id, segment, error=str(exc))
            raise
        cfg = settings()
        countdown = delay(self.request.retries, cfg.task_backoff_base, cfg.task_backoff_cap)
        raise self.retry(exc=exc, countdown=countdown) from exc
    log.info(
        "diff-segment",
        job=job_id,
        segment=segment,
        segments=job.segments,
        primary=options.primary,
        replica=options.replica,
        seconds=round(time.monotonic() - started, 3),
        **counts,
    )
    return counts
