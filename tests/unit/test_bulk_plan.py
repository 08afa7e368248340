"""Segment options: where a bulk command's segments run, and what is bad usage."""

from __future__ import annotations

import time

import pytest

from commands.bulk import watchdog as watchdog_module
from commands.bulk.plan import LOCAL_SEGMENTS, plan
from commands.bulk.run import POLL_SECONDS, poll_interval
from commands.bulk.watchdog import Watchdog
from tasks.core.errors import InvalidInputError, UnavailableError
from tasks.jobs.memory_store import MemoryJobStore


def test_no_options_run_every_segment_here() -> None:
    chosen = plan(None, None)
    assert (chosen.mode, chosen.wanted) == ("local", list(range(LOCAL_SEGMENTS)))


def test_segments_alone_fan_out() -> None:
    chosen = plan(None, 8)
    assert (chosen.mode, chosen.segments, chosen.wanted) == ("fanout", 8, list(range(8)))


def test_one_segment_runs_here() -> None:
    chosen = plan(3, 10)
    assert (chosen.mode, chosen.wanted) == ("one", [3])


@pytest.mark.parametrize(
    ("segment", "segments", "message"),
    [
        (1, None, "needs --segments"),
        (10, 10, "between 0 and 9"),
        (-1, 4, "between 0 and 3"),
        (None, 0, "at least 1"),
        (None, -2, "at least 1"),
    ],
)
def test_bad_segment_options(segment: int | None, segments: int | None, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        plan(segment, segments)


def test_watchdog_gives_up_when_a_started_job_stalls_without_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = MemoryJobStore()
    job = store.create("test", 2, {})
    store.start(job.id, 0)
    monkeypatch.setattr(watchdog_module, "STALL_SECONDS", 0.0)
    consumers = [1]
    monkeypatch.setattr(watchdog_module, "_bulk_consumers", lambda: consumers[0])
    watchdog = Watchdog(store, job, pickup_timeout=0.5)
    watchdog(store.snapshot(job.id))  # first sight: progress "moved"
    time.sleep(0.6)
    watchdog(store.snapshot(job.id))  # stalled, but a worker consumes the queue: keep waiting
    consumers[0] = 0
    time.sleep(0.6)
    with pytest.raises(UnavailableError, match="made no progress"):
        watchdog(store.snapshot(job.id))
    assert store.snapshot(job.id).cancelled


def test_a_young_job_is_polled_often_an_old_one_as_before() -> None:
    assert poll_interval(0.0) == 0.02
    assert poll_interval(1.0) == pytest.approx(0.05)  # the end of a 1 s job: within 5 %
    assert poll_interval(60.0) == POLL_SECONDS
