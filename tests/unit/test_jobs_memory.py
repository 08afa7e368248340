"""The job record's contract, on the in-process store (the Redis one has the same tests)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tasks.core.errors import PermanentError, TransientError
from tasks.jobs.memory_store import MemoryJobStore
from tasks.jobs.model import DONE, FAILED, RUNNING, JobStore, Page, run_segment


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

    with pytest.raises(TransientError):
        run_segment(store, job, 0, pages(5, fail_at=3, exc=TransientError("throttled")))
    state = store.snapshot(job.id).segments[0]
    assert (state.status, state.counts, state.checkpoint) == (RUNNING, {"scanned": 3}, 3)

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
