"""tasks.aws.in_flight: a call's chunks at once, results in order, nothing left in flight."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tasks.aws import in_flight
from tasks.core import config


@pytest.fixture()
def in_flight_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], None]]:
    def limit(n: int) -> None:
        monkeypatch.setenv("REPLICATOR_REQUESTS_IN_FLIGHT", str(n))
        config.reset()

    yield limit
    config.reset()


def test_chunks_run_at_once_and_come_back_in_order(in_flight_limit: Callable[[int], None]) -> None:
    in_flight_limit(4)
    together = threading.Barrier(4, timeout=10)  # broken unless four chunks wait at once

    def work(n: int) -> int:
        together.wait()
        return n * 10

    assert in_flight.each([1, 2, 3, 4], work) == [10, 20, 30, 40]


def test_one_in_flight_runs_them_one_after_the_other_here(
    in_flight_limit: Callable[[int], None],
) -> None:
    in_flight_limit(1)
    threads = in_flight.each([1, 2, 3], lambda _: threading.current_thread())
    assert threads == [threading.current_thread()] * 3


def test_a_failure_is_raised_after_every_chunk_is_done(
    in_flight_limit: Callable[[int], None],
) -> None:
    in_flight_limit(4)
    finished: list[int] = []

    def work(n: int) -> int:
        if n == 0:
            raise RuntimeError("chunk 0 failed")
        time.sleep(0.2)
        finished.append(n)
        return n

    with pytest.raises(RuntimeError, match="chunk 0 failed"):
        in_flight.each([0, 1, 2], work)
    assert sorted(finished) == [1, 2]  # nothing was still in flight when it raised


def test_a_chunk_that_sends_chunks_of_its_own_does_not_wait_on_the_pool(
    in_flight_limit: Callable[[int], None],
) -> None:
    in_flight_limit(2)

    def outer(n: int) -> list[int]:
        return in_flight.each([n, n + 1], lambda m: m * 2)

    assert in_flight.each([1, 10], outer) == [[2, 4], [20, 22]]


def test_interrupted_while_waiting_it_still_waits_for_what_it_sent(
    in_flight_limit: Callable[[int], None],
) -> None:
    """A task's soft time limit is an exception raised in the waiting thread: the requests it
    had sent must land before the task goes on (or a retry's newer write could be overwritten)."""
    in_flight_limit(4)
    finished: list[int] = []

    def work(n: int) -> int:
        time.sleep(0.5)
        finished.append(n)
        return n

    def soft_limit(*_: object) -> None:
        raise TimeoutError("soft time limit")

    previous = signal.signal(signal.SIGALRM, soft_limit)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        with pytest.raises(TimeoutError):
            in_flight.each([1, 2, 3], work)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert sorted(finished) == [1, 2, 3]
