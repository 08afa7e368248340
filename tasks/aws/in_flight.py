"""The batch requests of one call sent at once, on a small thread pool of the process's own.

A replicate message of 500 keys is 5 reads and 20 writes. One after the other they cost 25 round
trips: nothing against a local endpoint, half a second against a replica 20 ms away, and the
task's process waits through all of them. ``each`` runs the chunks of one call on up to
``requests_in_flight`` threads (``REPLICATOR_REQUESTS_IN_FLIGHT``, 8; 1 sends them one after the
other) and returns their results in order. boto3 clients are thread-safe.

``each`` returns only when every chunk is done, failed ones included, and then raises the first
failure; interrupted itself (a task's soft time limit), it still waits for what it sent: nothing
the call sent is in flight when its caller goes on (the stale-write guard's after-write check,
and a retry's newer write, rely on that). A chunk that itself calls ``each`` runs its chunks in
its own thread, so the pool never waits on itself. The pool belongs to the process that made
it; a forked pool process makes its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

from tasks.core.config import settings

T = TypeVar("T")
R = TypeVar("R")

_inside = threading.local()


class _Pools:
    """This process's pools, by size, and the lock that guards making them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_size: dict[int, ThreadPoolExecutor] = {}


_pools = _Pools()


def each(chunks: Sequence[T], work: Callable[[T], R]) -> list[R]:
    """``work`` on every chunk, up to ``requests_in_flight`` at once; results in order."""
    size = settings().requests_in_flight
    if len(chunks) <= 1 or size <= 1 or getattr(_inside, "busy", False):
        return [work(chunk) for chunk in chunks]
    pool, futures = _pool(size), []
    try:
        for chunk in chunks:
            futures.append(pool.submit(_marked, work, chunk))
        wait(futures)
    except BaseException:  # e.g. the task's soft time limit, raised in this thread
        wait(futures)  # what was sent lands before the caller hears of it
        raise
    return [future.result() for future in futures]


def _marked(work: Callable[[T], R], chunk: T) -> R:
    _inside.busy = True
    return work(chunk)


def _forget_after_fork() -> None:
    # The parent's threads do not exist here, and one of them may have held the lock.
    _pools.__init__()  # type: ignore[misc]


os.register_at_fork(after_in_child=_forget_after_fork)


def _pool(size: int) -> ThreadPoolExecutor:
    with _pools.lock:
        pool = _pools.by_size.get(size)
        if pool is None:
            pool = _pools.by_size[size] = ThreadPoolExecutor(size, thread_name_prefix="in-flight")
        return pool
