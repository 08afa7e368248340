"""Bulk jobs: an explicit record of work split into scan segments, shared by every bulk command.

A bulk command (diff-tables, backup-table, restore, backfills) creates a ``Job`` of N segments in
a ``JobStore``. Each segment (a Celery task on a worker, or a thread of the command) runs
``run_segment``: it reads the segment's checkpoint, resumes its work from there and, after every
page, calls ``advance``, which in ONE atomic step adds the page's counts, stores the new
checkpoint and appends the page's records (lines for the command to print or report). A segment
redelivered after its worker died therefore resumes from its last page and counts nothing twice.
Each delivery of a segment is numbered (``start``) and only the latest may advance or finish it:
when the broker hands a segment out again while its first delivery still works (a task that
outlived the visibility timeout), the new delivery takes over from the checkpoint and the old one
stops at its next page, its uncommitted page uncounted.
The command polls ``snapshot`` for progress and aggregation and drains ``records``.

Two stores with the same API: ``RedisJobStore`` (fan-out over workers; no chords) and
``MemoryJobStore`` (the command works alone, no broker needed).

Redis layout (namespace NS, job J, segment I); every key expires ``JOB_TTL`` after its last write::

    NS:job:J            hash  kind, segments, params (JSON), created, cancelled
    NS:job:J:seg:I      hash  status, deliveries, error, checkpoint (JSON), c:NAME counters
    NS:job:J:records    list  records in the order segments appended them
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from tasks.config import settings
from tasks.errors import NotFoundError, TransientError

JOB_TTL = 7 * 24 * 3600
WAITING, RUNNING, DONE, FAILED = "waiting", "running", "done", "failed"
_COUNTER = "c:"


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    segments: int
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class SegmentState:
    """One segment as the store has it: status, counters, checkpoint (None before any page)."""

    status: str = WAITING
    counts: dict[str, int] = field(default_factory=dict)
    checkpoint: Any = None
    error: str = ""
    deliveries: int = 0

    @property
    def finished(self) -> bool:
        return self.status in (DONE, FAILED)


@dataclass
class Snapshot:
    """Every segment of a job at one moment."""

    segments: list[SegmentState]
    cancelled: bool = False

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
        """Mark a delivery of the segment; its state, or None when the job was cancelled."""

    def advance(self, job_id: str, segment: int, page: Page, delivery: int = 0) -> bool:
        """Atomically add counts, store the checkpoint and append records.

        False, with nothing stored, when ``delivery`` (if given) is no longer the segment's
        latest; False, after storing, when the job was cancelled. True: go on.
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


def run_segment(
    store: JobStore, job: Job, segment: int, work: Work, on_progress: Progress | None = None
) -> dict[str, int]:
    """Run ``work(checkpoint)`` for one segment, recording each page; returns the segment counts.

    A segment already done returns its counts without working again (a redelivered message);
    a cancelled job's segment stops after the page in hand.
    Transient errors propagate with the segment left running (the caller retries; the next
    delivery resumes from the checkpoint); any other error marks the segment failed.
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
    except TransientError:
        raise
    except Exception as exc:
        store.finish(job.id, segment, str(exc) or type(exc).__name__, state.deliveries)
        raise
    store.finish(job.id, segment, delivery=state.deliveries)
    return dict(counts)


# -- Redis -------------------------------------------------------------------------------------


class RedisJobStore:
    """Job records in Redis, shared by the command and every worker."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def _job(self, job_id: str) -> str:
        return settings().key("job", job_id)

    def _seg(self, job_id: str, segment: int) -> str:
        return f"{self._job(job_id)}:seg:{segment}"

    def create(self, kind: str, segments: int, params: Mapping[str, Any]) -> Job:
        job = Job(new_job_id(), kind, segments, dict(params))
        name = self._job(job.id)
        pipe = self._redis.pipeline()
        pipe.hset(
            name,
            mapping={
                "kind": kind,
                "segments": segments,
                "created": time.time(),
                "params": json.dumps(job.params, sort_keys=True),
            },
        )
        pipe.expire(name, JOB_TTL)
        for i in range(segments):
            pipe.hset(self._seg(job.id, i), "status", WAITING)
            pipe.expire(self._seg(job.id, i), JOB_TTL)
        pipe.execute()
        return job

    def load(self, job_id: str) -> Job:
        raw = _texts(self._redis.hgetall(self._job(job_id)))
        if not raw:
            raise NotFoundError(f"bulk job {job_id} does not exist (or expired)")
        return Job(job_id, raw["kind"], int(raw["segments"]), json.loads(raw["params"]))

    def start(self, job_id: str, segment: int) -> SegmentState | None:
        if self._redis.hget(self._job(job_id), "cancelled"):
            return None
        name = self._seg(job_id, segment)
        pipe = self._redis.pipeline()
        pipe.hincrby(name, "deliveries", 1)
        pipe.hget(name, "status")
        _, status = pipe.execute()
        if status != DONE.encode():
            self._redis.hset(name, "status", RUNNING)
        return self._state(job_id, segment)

    def advance(self, job_id: str, segment: int, page: Page, delivery: int = 0) -> bool:
        name, records = self._seg(job_id, segment), f"{self._job(job_id)}:records"

        def queue(pipe: redis.client.Pipeline) -> None:
            for counter, n in page.counts.items():
                if n:
                    pipe.hincrby(name, _COUNTER + counter, n)
            pipe.hset(name, "checkpoint", json.dumps(page.checkpoint))
            if page.records:
                pipe.rpush(records, *page.records)
                pipe.expire(records, JOB_TTL)
            pipe.expire(name, JOB_TTL)
            pipe.hget(self._job(job_id), "cancelled")

        done = self._if_current(name, delivery, queue)
        return done is not None and not done[-1]

    def finish(self, job_id: str, segment: int, error: str = "", delivery: int = 0) -> None:
        mapping: dict[str | bytes, str | bytes] = (
            {"status": FAILED, "error": error} if error else {"status": DONE}
        )
        name = self._seg(job_id, segment)
        self._if_current(
            name,
            delivery,
            lambda pipe: pipe.hset(name, mapping=mapping),  # type: ignore[arg-type]
        )

    def _if_current(
        self, name: str, delivery: int, queue: Callable[[redis.client.Pipeline], object]
    ) -> list[Any] | None:
        """Run the queued commands in one transaction if ``delivery`` is still the segment's
        latest (or is 0); their results, or None when a later delivery took over."""
        with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(name)  # type: ignore[no-untyped-call]
                    current = int(pipe.hget(name, "deliveries") or 0)
                    if delivery and current != delivery:
                        pipe.unwatch()
                        return None
                    pipe.multi()
                    queue(pipe)
                    return list(pipe.execute())
                except redis.WatchError:
                    continue

    def _state(self, job_id: str, segment: int) -> SegmentState:
        return _state_from(_texts(self._redis.hgetall(self._seg(job_id, segment))))

    def snapshot(self, job_id: str) -> Snapshot:
        job = self.load(job_id)
        pipe = self._redis.pipeline(transaction=False)
        for i in range(job.segments):
            pipe.hgetall(self._seg(job_id, i))
        pipe.hget(self._job(job_id), "cancelled")
        *rows, cancelled = pipe.execute()
        states = [_state_from(_texts(row)) for row in rows]
        return Snapshot(states, cancelled=bool(cancelled))

    def records(self, job_id: str, start: int) -> list[str]:
        return [_text(r) for r in self._redis.lrange(f"{self._job(job_id)}:records", start, -1)]

    def cancel(self, job_id: str) -> None:
        self._redis.hset(self._job(job_id), "cancelled", 1)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _texts(row: Mapping[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in row.items()}


def _state_from(raw: Mapping[str, str]) -> SegmentState:
    return SegmentState(
        status=raw.get("status", WAITING),
        counts={k[len(_COUNTER) :]: int(v) for k, v in raw.items() if k.startswith(_COUNTER)},
        checkpoint=json.loads(raw["checkpoint"]) if "checkpoint" in raw else None,
        error=raw.get("error", ""),
        deliveries=int(raw.get("deliveries", 0)),
    )


# -- memory ------------------------------------------------------------------------------------


class MemoryJobStore:
    """Job records in this process (the command works alone); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._segments: dict[str, list[SegmentState]] = {}
        self._records: dict[str, list[str]] = {}
        self._cancelled: set[str] = set()

    def create(self, kind: str, segments: int, params: Mapping[str, Any]) -> Job:
        job = Job(new_job_id(), kind, segments, dict(params))
        with self._lock:
            self._jobs[job.id] = job
            self._segments[job.id] = [SegmentState() for _ in range(segments)]
            self._records[job.id] = []
        return job

    def load(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise NotFoundError(f"bulk job {job_id} does not exist") from None

    def start(self, job_id: str, segment: int) -> SegmentState | None:
        with self._lock:
            if job_id in self._cancelled:
                return None
            state = self._segments[job_id][segment]
            state.deliveries += 1
            if state.status != DONE:
                state.status = RUNNING
            return _copy(state)

    def advance(self, job_id: str, segment: int, page: Page, delivery: int = 0) -> bool:
        with self._lock:
            state = self._segments[job_id][segment]
            if delivery and delivery != state.deliveries:
                return False
            state.counts = dict(Counter(state.counts) + Counter(page.counts))
            state.checkpoint = json.loads(json.dumps(page.checkpoint))
            self._records[job_id].extend(page.records)
            return job_id not in self._cancelled

    def finish(self, job_id: str, segment: int, error: str = "", delivery: int = 0) -> None:
        with self._lock:
            state = self._segments[job_id][segment]
            if delivery and delivery != state.deliveries:
                return
            state.status, state.error = (FAILED, error) if error else (DONE, "")

    def snapshot(self, job_id: str) -> Snapshot:
        with self._lock:
            return Snapshot(
                [_copy(s) for s in self._segments[job_id]], cancelled=job_id in self._cancelled
            )

    def records(self, job_id: str, start: int) -> list[str]:
        with self._lock:
            return list(self._records[job_id][start:])

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancelled.add(job_id)


def _copy(state: SegmentState) -> SegmentState:
    return SegmentState(
        state.status, dict(state.counts), state.checkpoint, state.error, state.deliveries
    )
