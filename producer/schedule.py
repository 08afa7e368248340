"""When each held shard is read next, and by which of a bounded number of reader threads.

* At most ``readers`` shards are read at once (a thread pool).
* A shard is read by one thread at a time, and at most ``max_rate`` times a second: the next
  read of a shard starts no earlier than ``1.1 / max_rate`` after the previous one started
  (GetRecords allows 5 a second per shard on both services; the tenth to spare absorbs the
  jitter between our clock and the service's count).
* A shard whose last page had records (or that Kinesis says is behind) is read again as soon as
  that allows; one at its tip waits ``idle_wait`` seconds after its last read ended.
* A shard whose lease deadline has passed (a renewal is late) waits; one whose lease is lost,
  handed over or finished is dropped.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from producer.keeper import Held
from producer.reader import Outcome
from tasks.core import logs
from tasks.core.backoff import delay

log = logs.get("producer")
MAX_READS_PER_SECOND = 5.0


class ReadScheduler:
    def __init__(
        self,
        readers: int,
        idle_wait: float,
        read: Callable[[Held], Outcome],
        forget: Callable[[Held], None],
        max_rate: float = MAX_READS_PER_SECOND,
    ) -> None:
        self._pool = ThreadPoolExecutor(readers, thread_name_prefix="shard-reader")
        self._read, self._forget = read, forget
        self._gap = 1.1 / max_rate
        self._idle_wait = max(idle_wait, self._gap)
        self._due: list[tuple[float, int, Held]] = []
        self._order = itertools.count()
        self._running: set[tuple[str, str]] = set()  # Held.key: shards of every pipeline
        self._failures: dict[tuple[str, str], int] = {}
        self._cond = threading.Condition()

    def add(self, held: Held, at: float | None = None) -> None:
        with self._cond:
            heapq.heappush(self._due, (at or time.monotonic(), next(self._order), held))
            self._cond.notify()

    def idle(self, held: Held) -> bool:
        """True when no read of the shard is in flight (callers set ``wanted`` first)."""
        with self._cond:
            return held.key not in self._running

    def run(self, stop: threading.Event) -> None:
        """Start reads as they fall due until ``stop``; then wait for the reads in flight."""
        while not stop.is_set():
            with self._cond:
                wait = self._start_due(time.monotonic())
                self._cond.wait(min(wait, 0.1))
        with self._cond:
            self._cond.notify_all()
        self._pool.shutdown(wait=True, cancel_futures=True)  # reads in flight finish their page

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _start_due(self, now: float) -> float:
        """Submit every due, readable shard; returns the seconds until the next one is due."""
        while self._due and self._due[0][0] <= now:
            _, _, held = heapq.heappop(self._due)
            if not held.active or held.wanted:
                self._forget(held)
            elif held.key in self._running or not held.readable(now):
                heapq.heappush(self._due, (now + 0.1, next(self._order), held))
            else:
                self._running.add(held.key)
                self._pool.submit(self._job, held)
        return self._due[0][0] - now if self._due else 1.0

    def _job(self, held: Held) -> None:
        started = time.monotonic()
        try:
            outcome = self._read(held)
            self._failures.pop(held.key, None)
            wait = 0.0 if outcome.more else self._idle_wait
            at = None if outcome.over else max(started + self._gap, time.monotonic() + wait)
        except Exception as exc:
            attempt = self._failures.get(held.key, 0)
            self._failures[held.key] = attempt + 1
            log.warning("shard read failed; retrying", shard=held.shard_id, error=str(exc))
            at = time.monotonic() + max(self._gap, delay(attempt, 0.5, 10.0))
        with self._cond:
            self._running.discard(held.key)
            if at is not None:
                heapq.heappush(self._due, (at, next(self._order), held))
            else:
                self._forget(held)
            self._cond.notify()
