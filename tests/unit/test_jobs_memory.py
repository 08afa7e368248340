"""The job record's contract, on the in-process store (the Redis one has the same tests)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tasks.core.errors import PermanentError, TransientError
from tasks.jobs.memory_store import MemoryJobStore
from tasks.jobs.model import (
    DONE,
    FAILED,
    RETRYING,
    RUNNING,
    JobStore,
    Page,
    SegmentState,
    SendAgain,
    run_segment,
)


def sends(calls: list[SegmentState]) -> SendAgain:
    """A retry callback that records each call and always sends the segment again."""

    def send(state: SegmentState) -> bool:
        calls.append(state)
        return True

    return send


def pages(n: int, fail_at: int | None = None, exc: Exception | None = None) -> Any:
    """Work of n pages counting one item each; resumes after the checkpointed page."""

    def work(checkpoint: Any) -> Iterator[Page]:
        for page in range((checkpoint or 0), n):
            if page == fail_at and exc is not None:
                raise exc
            yield Page({"scanned": 1}, page + 1, [f"r{page}"])

    return work


def contract(store: JobStore) -> None:
    job = store.create("test", 2, {"primary": "p"})
    assert store.load(job.id).params == {"primary": "p"}

    sent: list[SegmentState] = []
    with pytest.raises(TransientError):
        run_segment(
            store, job, 0, pages(5, fail_at=3, exc=TransientError("throttled")), retry=sends(sent)
        )
    state = store.snapshot(job.id).segments[0]
    assert (state.status, state.counts, state.checkpoint) == (RETRYING, {"scanned": 3}, 3)
    assert (state.attempt, state.reason, state.error) == (1, "throttled", "")
    assert [(s.status, s.attempt) for s in sent] == [(RETRYING, 1)]

    assert run_segment(store, job, 0, pages(5)) == {"scanned": 5}
    assert store.records(job.id, 0) == [f"r{i}" for i in range(5)]
    assert store.records(job.id, 4) == ["r4"]
    assert run_segment(store, job, 0, pages(5)) == {"scanned": 5}  # redelivered when done

    with pytest.raises(PermanentError):
        run_segment(store, job, 1, pages(5, fail_at=0, exc=PermanentError("denied")))
    snapshot = store.snapshot(job.id)
    assert [s.status for s in snapshot.segments] == [DONE, FAILED]
    assert snapshot.failures() == {1: "denied"}
    assert snapshot.totals == {"scanned": 5}
    assert snapshot.segments[0].deliveries == 3

    superseded(store)
    retries(store)

    store.cancel(job.id)
    assert store.start(job.id, 1) is None

    other = store.create("test", 1, {})

    def cancelled_mid_way(checkpoint: Any) -> Iterator[Page]:
        for page in range(5):
            if page == 2:
                store.cancel(other.id)
            yield Page({"scanned": 1}, page + 1)

    assert run_segment(store, other, 0, cancelled_mid_way) == {"scanned": 3}
    assert store.snapshot(other.id).segments[0].status == RUNNING


def test_memory_store_contract() -> None:
    contract(MemoryJobStore())


def superseded(store: JobStore) -> None:
    """A delivery handed out again while the first still works: the first stops, uncounted."""
    job = store.create("test", 1, {})
    first_work = pages(6)(None)
    first = store.start(job.id, 0)
    assert first is not None
    assert store.advance(job.id, 0, next(first_work), first.deliveries)  # page 0 committed
    second = store.start(job.id, 0)  # redelivered: resumes from page 1
    assert second is not None and second.checkpoint == 1
    assert not store.advance(job.id, 0, next(first_work), first.deliveries)  # page 1: refused
    store.finish(job.id, 0, "stale delivery failing", first.deliveries)  # ignored too
    assert run_segment(store, job, 0, pages(6)) == {"scanned": 6}
    state = store.snapshot(job.id).segments[0]
    assert (state.status, state.counts) == (DONE, {"scanned": 6})
    assert store.records(job.id, 0) == [f"r{i}" for i in range(6)]


def retries(store: JobStore) -> None:
    """Transient failures: retried while the callback sends them, failed when it gives up."""
    job = store.create("test", 2, {})
    calls: list[SegmentState] = []
    seen: list[SegmentState] = []

    def send(state: SegmentState) -> bool:
        calls.append(state)
        return len(calls) < 3

    def failing(checkpoint: Any) -> Iterator[Page]:
        seen.append(store.snapshot(job.id).segments[0])  # as the running delivery finds it
        raise TransientError("throttled")
        yield Page({}, checkpoint)

    for _ in range(3):  # fails at once, three times: sent again twice, then given up
        with pytest.raises(TransientError):
            run_segment(store, job, 0, failing, retry=send)
        if len(calls) < 3:
            assert store.snapshot(job.id).segments[0].status == RETRYING
    assert [s.attempt for s in calls] == [1, 2, 3]
    assert [(s.status, s.attempt, s.retrying) for s in seen[1:]] == [
        (RUNNING, 1, True),
        (RUNNING, 2, True),
    ]
    assert len({s.progress_at for s in calls}) == 1 and calls[0].progress_at > 0
    failed = store.snapshot(job.id).segments[0]
    assert (failed.status, failed.error, failed.reason) == (FAILED, "throttled", "throttled")
    assert store.snapshot(job.id).failures() == {0: "throttled"}
    assert not failed.retrying

    with pytest.raises(TransientError):  # no retry callback (the command's own process)
        run_segment(store, job, 1, pages(5, fail_at=0, exc=TransientError("throttled")))
    assert store.snapshot(job.id).segments[1].status == FAILED
    progress_resets_the_window(store)


def progress_resets_the_window(store: JobStore) -> None:
    """Going further than ever before clears the failures; taking back and redoing does not."""
    job = store.create("test", 1, {})
    throttled = TransientError("throttled")
    calls: list[SegmentState] = []

    def redo(extra: int) -> Any:
        def work(checkpoint: Any) -> Iterator[Page]:  # starts over, like a backup segment
            done = checkpoint or 0
            if done:
                yield Page({"items": -done}, 0)
            yield Page({"items": 3}, 3)
            if extra:
                yield Page({"items": extra}, 3 + extra)
            raise throttled

        return work

    def failing_run(extra: int) -> SegmentState:
        with pytest.raises(TransientError):
            run_segment(store, job, 0, redo(extra), retry=sends(calls))
        return store.snapshot(job.id).segments[0]

    assert failing_run(0).attempt == 1
    assert failing_run(0).attempt == 2  # the same 3 items again: no progress
    after = failing_run(1)  # one item further than ever: a new window, one failure in it
    assert (after.attempt, after.counts, after.reached) == (1, {"items": 4}, 4)
    assert calls[-1].progress_at > calls[0].progress_at
