"""The lease keeper: a thread that renews this producer's leases and takes its fair share.

Every tick (a tenth of the lease time) it heartbeats and renews every lease in one call, hands
over the leases another producer asked for once their reader is idle, then takes free, expired
or promised leases of ready shards and asks the busiest producer for more
(``producer.balance``).

A reader may read a shard only before the lease's *deadline*: the time the last successful
renewal was *sent*, plus ``STOP_FRACTION`` of the lease. Redis set the expiry after it received
that renewal, a full lease later, so a producer that can no longer renew (Redis away, process
frozen) stops reading at least ``(1 - STOP_FRACTION)`` of a lease before another may start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from producer import balance
from producer.leases import LeaseTable
from producer.stats import ProducerStats
from tasks.core import logs

log = logs.get("producer")
STOP_FRACTION = 0.7  # readers stop this far into a lease without a renewal
TICKS_PER_LEASE = 10


@dataclass
class Held:
    """A lease this producer holds, as its readers see it."""

    shard_id: str
    token: int
    checkpoint: str | None  # the shard's checkpoint when the lease was taken
    deadline: float  # time.monotonic() after which the shard is not read without a renewal
    lost: bool = False  # another producer holds it now (or it vanished)
    wanted: bool = False  # another producer asked for it: hand it over after the page in hand
    done: bool = False  # read to its end (SHARD_END written; the lease is gone with it)
    consumer: str = ""  # the checkpoint name whose lease this is (one per pipeline)

    @property
    def key(self) -> tuple[str, str]:
        """The shard among every pipeline's shards (shard ids repeat across streams)."""
        return self.consumer, self.shard_id

    def readable(self, now: float) -> bool:
        return not (self.lost or self.wanted or self.done) and now < self.deadline

    @property
    def active(self) -> bool:
        return not (self.lost or self.done)


class LeaseKeeper:
    def __init__(
        self,
        table: LeaseTable,
        ready: Callable[[], list[str]],
        stats: ProducerStats,
        idle: Callable[[Held], bool],
        on_taken: Callable[[Held], None],
        lease_seconds: float,
    ) -> None:
        self.table, self._ready, self._stats = table, ready, stats
        self._idle, self._on_taken = idle, on_taken
        self.lease_seconds = lease_seconds
        self.tick_seconds = lease_seconds / TICKS_PER_LEASE
        self._held: dict[str, Held] = {}
        self._lock = threading.Lock()
        self.last_snapshot: dict[str, int] = {}  # leases per live producer, for the metrics
        self.closing = False  # handing every lease over, taking none: the pipeline stops

    def get(self, shard_id: str) -> Held | None:
        with self._lock:
            return self._held.get(shard_id)

    def held(self) -> list[Held]:
        with self._lock:
            return list(self._held.values())

    def tick(self) -> None:
        self._renew()
        self._hand_over()
        if not self.closing:
            self._balance()

    def close(self) -> None:
        """Take no more leases; hand each over once its page in hand is done (``tick``)."""
        self.closing = True
        for held in self.held():
            held.wanted = True

    def _deadline(self, sent_at: float) -> float:
        return sent_at + self.lease_seconds * STOP_FRACTION

    def _renew(self) -> None:
        with self._lock:
            for shard_id in [s for s, h in self._held.items() if h.done]:
                del self._held[shard_id]
            tokens = {s: h.token for s, h in self._held.items()}
        sent_at = time.monotonic()
        statuses = self.table.renew(tokens)
        for shard_id, status in statuses.items():
            held = self.get(shard_id)
            if held is None or held.done:
                continue
            if status == 0:
                self._lose(held)
            else:
                held.deadline = self._deadline(sent_at)
                held.wanted = held.wanted or status == 2

    def _lose(self, held: Held) -> None:
        held.lost = True
        with self._lock:
            self._held.pop(held.shard_id, None)
        self._stats.add(leases_lost=1)
        log.warning("lease lost: another producer holds the shard now", shard=held.shard_id)

    def _hand_over(self) -> None:
        for held in self.held():
            if held.wanted and not held.done and self._idle(held):
                self._release(held, "handed over")

    def _release(self, held: Held, why: str) -> None:
        with self._lock:
            self._held.pop(held.shard_id, None)
        held.lost = True
        if self.table.release(held.shard_id, held.token):
            self._stats.add(leases_released=1)
            log.info("lease released", shard=held.shard_id, reason=why)

    def _balance(self) -> None:
        ready = self._ready()
        snap = self.table.snapshot()
        counts: dict[str, int] = {p: 0 for p in snap.producers}
        for record in snap.leases.values():
            if record.held(snap.now_ms):
                counts[record.owner] = counts.get(record.owner, 0) + 1
        moves = balance.plan(self.table.me, ready, snap)
        taken = sum(self._take(shard_id) for shard_id in moves.take)
        if taken:  # the metrics show this tick's leases, not the ones before it
            counts[self.table.me] = counts.get(self.table.me, 0) + taken
        self.last_snapshot = counts
        for shard_id, owner, token in moves.ask:
            if self.table.request(shard_id, owner, token):
                log.info("asked for a shard", shard=shard_id, owner=owner)

    def _take(self, shard_id: str) -> bool:
        sent_at = time.monotonic()
        got = self.table.acquire(shard_id)
        if got is None:
            return False
        token, checkpoint = got
        held = Held(
            shard_id, token, checkpoint, self._deadline(sent_at), consumer=self.table.consumer
        )
        with self._lock:
            self._held[shard_id] = held
        self._stats.add(leases_taken=1)
        log.info("lease taken", shard=shard_id, token=token, checkpoint=checkpoint)
        self._on_taken(held)
        return True

    def release_all(self) -> None:
        """Hand every lease back (the readers have stopped) and leave the live producers."""
        for held in self.held():
            if not held.done:
                self._release(held, "stopping")
        self.table.leave()
