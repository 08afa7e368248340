"""Bulk jobs: an explicit record of work split into scan segments, shared by every bulk command.

A bulk command (diff-tables, backup-table, restore, backfills) creates a ``Job`` of N segments in
a ``JobStore``. Each segment (a Celery task on a worker, or a thread of the command) runs
``run_segment``: it reads the segment's checkpoint, resumes its work from there and, after every
page, calls ``advance``, which in ONE atomic step adds the page's counts, stores the new
checkpoint and appends the page's records (lines for the command to print or report). A segment
redelivered after its worker died therefore resumes from its last page and counts nothing twice.
Each delivery of a segment is numbered (``start``) and only the latest may advance or finish it:
when the broker hands a segment out again while its first delivery still works (its worker was
taken for dead: cut off from the broker for longer than Redis's visibility timeout or RabbitMQ's
heartbeats), the new delivery takes over from the checkpoint and the old one stops at its next
page, its uncommitted page uncounted.
The command polls ``snapshot`` for progress and aggregation and drains ``records``.

A transient failure (``TransientError``) does not end a segment run on a worker: ``run_segment``
marks it ``retrying`` (with its attempt and reason) and hands it to the task's ``retry``
callback, which sends the segment again (``tasks.resend``, policy in ``tasks.core.retry``) or
says that its retries are exhausted; then, or at once for any other error, the segment is marked
failed with its reason. The store keeps what the retry window needs: ``progress_at``, when the
segment last went further than it had ever been (``reached``, the most work its counters ever
showed), or started afresh, and ``attempt``, its failures since then.

Two stores with the same API: ``tasks.jobs.redis_store.RedisJobStore`` (fan-out over workers;
no chords) and ``tasks.jobs.memory_store.MemoryJobStore`` (the command works alone, no broker).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tasks.core.errors import TransientError

WAITING, RUNNING, RETRYING, DONE, FAILED = "waiting", "running", "retrying", "done", "failed"
STATUSES = (WAITING, RUNNING, RETRYING, DONE, FAILED)


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    segments: int
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class SegmentState:
    """One segment as the store has it: status, counters, checkpoint (None before any page).

    ``attempt`` counts its transient failures since ``progress_at`` (wall-clock time of its last
    progress or fresh start), ``reason`` is the last one's; ``error`` is set when it failed.
    """

    status: str = WAITING
    counts: dict[str, int] = field(default_factory=dict)
    checkpoint: Any = None
    error: str = ""
    deliveries: int = 0
    attempt: int = 0
    reason: str = ""
    progress_at: float = 0.0
    reached: int = 0

    @property
    def finished(self) -> bool:
        return self.status in (DONE, FAILED)

    @property
    def retrying(self) -> bool:
        """Waiting to be sent again after a transient failure, or running again after one."""
        return self.status == RETRYING or (self.status == RUNNING and self.attempt > 0)


@dataclass
class Snapshot:
    """Every segment of a job at one moment."""

    segments: list[SegmentState]
    cancelled: bool = False
    rate_cap: float | None = None  # the job's rate limit in force (it adapts to throttling)

    @property
    def totals(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for segment in self.segments:
            total.update(segment.counts)
        return dict(total)

    def count(self, *statuses: str) -> int:
        return sum(1 for s in self.segments if s.status in statuses)

    @property
    def picked_up(self) -> bool:
        return any(s.deliveries for s in self.segments)

    def failures(self) -> dict[int, str]:
        return {i: s.error for i, s in enumerate(self.segments) if s.status == FAILED}

    def retrying(self) -> dict[int, SegmentState]:
        return {i: s for i, s in enumerate(self.segments) if s.retrying}


@dataclass(frozen=True)
class Page:
    """What one page of work did: counters to add, the checkpoint after it, records to append."""

    counts: Mapping[str, int]
    checkpoint: Any
    records: Sequence[str] = ()


class JobStore(Protocol):
    def create(self, kind: str, segments: int, params: Mapping[str, Any]) -> Job: ...

    def load(self, job_id: str) -> Job: ...

    def start(self, job_id: str, segment: int) -> SegmentState | None:
        """Mark a delivery of the segment; its state, or None when the job was cancelled.

        Unless the segment was ``retrying``, this is a fresh start: ``attempt`` 0, and
        ``progress_at`` now.
        """

    def advance(self, job_id: str, segment: int, page: Page, delivery: int = 0) -> bool:
        """Atomically add counts, store the checkpoint and append records.

        False, with nothing stored, when ``delivery`` (if given) is no longer the segment's
        latest; False, after storing, when the job was cancelled. True: go on.
        A page that takes the counters' sum past ``reached`` is progress: ``reached`` moves up,
        ``progress_at`` is now, ``attempt`` and ``reason`` are cleared.
        """

    def retrying(
        self, job_id: str, segment: int, reason: str, delivery: int = 0
    ) -> SegmentState | None:
        """Mark the segment as waiting to be retried: one more ``attempt``, its ``reason``.

        Its new state, or None (nothing stored) when a later delivery runs it.
        """

    def finish(self, job_id: str, segment: int, error: str = "", delivery: int = 0) -> None:
        """Mark the segment done (or failed, with the reason), unless a later delivery runs it."""

    def snapshot(self, job_id: str) -> Snapshot: ...

    def records(self, job_id: str, start: int) -> list[str]:
        """Records from index ``start`` on (the caller keeps its cursor)."""

    def cancel(self, job_id: str) -> None: ...


def new_job_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


# -- running one segment -----------------------------------------------------------------------

Work = Callable[[Any], Iterator[Page]]
Progress = Callable[[Mapping[str, int]], None]
SendAgain = Callable[[SegmentState], bool]
"""Send a segment again after a transient failure (its ``retrying`` state says which attempt
and since when it fails); False, sending nothing, when its retries are exhausted."""


def run_segment(
    store: JobStore,
    job: Job,
    segment: int,
    work: Work,
    on_progress: Progress | None = None,
    retry: SendAgain | None = None,
) -> dict[str, int]:
    """Run ``work(checkpoint)`` for one segment, recording each page; returns the segment counts.

    A segment already done returns its counts without working again (a redelivered message);
    a cancelled job's segment stops after the page in hand.
    A transient error marks the segment ``retrying`` and calls ``retry``; when there is no
    ``retry`` or it says the retries are exhausted, or for any other error, the segment is marked
    failed with the error as its reason. The error propagates in every case.
    """
    state = store.start(job.id, segment)
    if state is None:
        return {}
    if state.status == DONE:
        return state.counts
    counts: Counter[str] = Counter(state.counts)
    try:
        for page in work(state.checkpoint):
            going_on = store.advance(job.id, segment, page, state.deliveries)
            counts.update(page.counts)
            if on_progress:
                on_progress(dict(counts))
            if not going_on:  # cancelled, or a later delivery took over
                return dict(counts)
    except TransientError as exc:
        if not _retried(store, job, segment, _reason(exc), state.deliveries, retry):
            store.finish(job.id, segment, _reason(exc), state.deliveries)
        raise
    except Exception as exc:
        store.finish(job.id, segment, _reason(exc), state.deliveries)
        raise
    store.finish(job.id, segment, delivery=state.deliveries)
    return dict(counts)


def _retried(
    store: JobStore, job: Job, segment: int, reason: str, delivery: int, retry: SendAgain | None
) -> bool:
    """True when the segment was sent again (or a later delivery runs it)."""
    if retry is None:
        return False
    waiting = store.retrying(job.id, segment, reason, delivery)
    return waiting is None or retry(waiting)


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
