"""Celery tasks on the ``bulk`` queue: one segment of a bulk job (the job record is in Redis).

``diff-segment`` (diff-tables), ``backup-segment`` (backup-table), ``backfill-segment``
(incremental-backfill) and ``restore-segment`` (restore-table from files, or point in time) all
take the job id and the segment number; the job's kind (``tasks.kinds``) says what to do.
Progress goes to the task state (Flower shows it); the result is the segment's counts. A
redelivered task resumes from the segment's checkpoint.

After a transient failure the segment is sent again (``tasks.resend``) as long as it has been
failing for less than the retry window (``tasks.core.retry``); the delivery that failed ends in
Celery's RETRY state (Flower shows the reason; the new message is already sent). Once the window
is over the segment is marked failed with its reason, and the command reports it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from celery import shared_task
from celery.exceptions import Retry

from tasks import names
from tasks.coord.redis_conn import connection
from tasks.core import logs
from tasks.core.errors import TransientError
from tasks.core.retry import policy
from tasks.jobs.model import Job, SegmentState, SendAgain
from tasks.jobs.redis_store import RedisJobStore
from tasks.kinds import KINDS, display, run_here
from tasks.resend import send_again

log = logs.get("tasks")


def progress_meta(job: Job, segment: int, counts: Mapping[str, int], rate: float) -> dict[str, Any]:
    """The task state Flower shows while a segment runs."""
    summary = KINDS[job.kind].summary(counts)
    return {
        "job": job.id,
        "segment": segment,
        "segments": job.segments,
        **counts,
        **summary,
        "items_per_second": round(rate, 1),
    }


def _run(task: Any, job_id: str, segment: int, attempt: int) -> dict[str, int]:
    """One delivery of a segment task; logs one summary line (counts, never items)."""
    started = time.monotonic()
    store = RedisJobStore(connection())
    job = store.load(job_id)
    rate_field = KINDS[job.kind].rate_field

    def progress(counts: Mapping[str, int]) -> None:
        rate = counts.get(rate_field, 0) / max(time.monotonic() - started, 1e-6)
        task.update_state(state="PROGRESS", meta=progress_meta(job, segment, counts, rate))

    sent: list[float] = []
    try:
        counts = run_here(store, job, segment, progress, _sender(task, job, segment, sent))
    except TransientError as exc:
        if sent:
            raise Retry(exc=exc, when=round(sent[0], 3)) from exc
        raise
    log.info(
        task.name,
        job=job_id,
        segment=segment,
        attempt=attempt,
        seconds=round(time.monotonic() - started, 3),
        **display(job),
        **counts,
    )
    return counts


def _sender(task: Any, job: Job, segment: int, sent: list[float]) -> SendAgain:
    """The segment's retry: sent again while within its window; the countdown goes to ``sent``."""

    def again(state: SegmentState) -> bool:
        failed = state.attempt - 1  # the attempt that just failed, 0-based
        deadline = policy().segment_deadline(state.progress_at)
        shown = repr({**display(job), "attempt": state.attempt})
        countdown = send_again(task, (job.id, segment), {}, failed, deadline, kwargsrepr=shown)
        fields = {"job": job.id, "segment": segment, "attempt": state.attempt}
        if countdown is None:
            log.error("segment failed: retries exhausted", **fields, reason=state.reason)
            return False
        log.warning(
            "segment sent again", **fields, countdown=round(countdown, 3), reason=state.reason
        )
        sent.append(countdown)
        return True

    return again


_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
}


@shared_task(name=names.DIFF_SEGMENT, **_OPTIONS)
def diff_segment(self: Any, job_id: str, segment: int, attempt: int = 0) -> dict[str, int]:
    """One segment of a diff-tables job."""
    return _run(self, job_id, segment, attempt)


@shared_task(name=names.BACKUP_SEGMENT, **_OPTIONS)
def backup_segment(self: Any, job_id: str, segment: int, attempt: int = 0) -> dict[str, int]:
    """One segment of a backup-table job."""
    return _run(self, job_id, segment, attempt)


@shared_task(name=names.BACKFILL_SEGMENT, **_OPTIONS)
def backfill_segment(self: Any, job_id: str, segment: int, attempt: int = 0) -> dict[str, int]:
    """One segment of an incremental-backfill job."""
    return _run(self, job_id, segment, attempt)


@shared_task(name=names.RESTORE_SEGMENT, **_OPTIONS)
def restore_segment(self: Any, job_id: str, segment: int, attempt: int = 0) -> dict[str, int]:
    """One segment of a restore-table job."""
    return _run(self, job_id, segment, attempt)
