"""The poller: discovers a stream's shards, holds leases on its share, reads them concurrently.

Three kinds of threads share one ``Poller``:

* discovery: lists the stream's shards every ``discover_every`` seconds (and soon after a shard
  finished, as its children may be listed now), paginated, backing off when throttled;
* the lease keeper (``producer.keeper``): renews this producer's leases, hands over the ones
  asked for, takes its fair share; it also logs the status line and publishes the per-shard
  state that ``replicator status`` shows;
* the calling thread schedules the reads (``producer.schedule``) on a pool of ``readers``
  threads, each page read, enqueued and checkpointed by ``producer.reader``.

At-least-once: a shard's checkpoint advances only after every key of the page was sent. On
``stop`` (SIGTERM/SIGINT) the pages in hand are finished and checkpointed, then every lease is
released so that another producer continues at once, and ``run`` returns.

The poller is a reusable component: give it a consumer name and, for shards without a
checkpoint, a start position (or one per shard); stop it by setting ``stop``. ``run`` drives it
with threads of its own; a fleet (``producer.fleet``) drives many pollers instead, with one
shared ``ReadScheduler`` and one thread each calling every poller's ``lease_step`` and
``discovery_step``.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import redis

from producer import status
from producer.checkpoints import Checkpoints
from producer.enqueue import Enqueuer
from producer.filters import RecordFilter
from producer.keeper import Held, LeaseKeeper
from producer.leases import LeaseTable
from producer.reader import TRIM_HORIZON, ReadOptions, ShardReader
from producer.schedule import ReadScheduler
from producer.shards import ShardGraph
from producer.sources import Position, Source
from producer.stats import ProducerStats, ShardStatus
from tasks.coord.redis_conn import connection
from tasks.core import logs
from tasks.core.backoff import delay
from tasks.core.errors import TransientError

log = logs.get("producer")

DEFAULT_LEASE_SECONDS = 10.0
DEFAULT_READERS = 32
# The gap before a shard at its tip is read again (`--poll-interval`), most of the lag at the
# tip. bench/producer.py --fleet behind 40 ms: 32 shards, one producer, lag p99 618 ms at 0.5 s,
# 466 ms at 0.4 s, 499 ms at 0.25 s; 100 pipelines x 4 shards over two producers 1079 / 948 /
# 955 ms (CPU-bound there). At 0.4 s a shard at its tip is read every 0.44 s, 2.3 times a
# second: two readers of one shard (DynamoDB Streams allows two; a migration's tail beside the
# producer) stay under the services' 5 reads a second per shard.
DEFAULT_IDLE_WAIT = 0.4
JOIN_SECONDS = 10.0


@dataclass
class PollerOptions:
    start: Position = TRIM_HORIZON
    positions: Mapping[str, Position] = field(default_factory=dict)  # explicit starts per shard
    page_limit: int = 1000
    idle_sleep: float = DEFAULT_IDLE_WAIT  # before a shard at its tip is read again
    readers: int = DEFAULT_READERS  # shards read at once
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    discover_every: float = 10.0
    status_every: float = 10.0


def producer_id() -> str:
    """This process's name among the producers: host, pid and a few random characters."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


class Poller:
    def __init__(
        self,
        source: Source,
        consumer: str,
        enqueuer: Enqueuer,
        record_filter: RecordFilter,
        options: PollerOptions | None = None,
        client: redis.Redis | None = None,
        owner: str | None = None,
        stop: threading.Event | None = None,
        scheduler: ReadScheduler | None = None,  # shared by a fleet's pollers
        wake: threading.Event | None = None,  # set when the lease keeper should tick at once
        pipeline: str = "",
    ) -> None:
        self.pipeline = pipeline
        self.source, self.consumer, self.options = source, consumer, options or PollerOptions()
        self.targets = [target.name for target in enqueuer.targets]
        self.transforms = {
            t.name: t.transform.identity for t in enqueuer.targets if t.transform.identity
        }
        self.owner = owner or producer_id()
        self.redis = client or connection()
        self.stop = stop or threading.Event()
        self.stats = ProducerStats()
        self.graph = ShardGraph()
        self.checkpoints = Checkpoints(self.redis, consumer)
        self.leases = LeaseTable(self.redis, consumer, self.owner, self.options.lease_seconds)
        self._rediscover = threading.Event()
        self._rebalance = wake or threading.Event()  # wakes the lease keeper: shards are ready
        self._discovery_attempt = 0
        self._next_status = time.monotonic() + self.options.status_every
        self.reader = ShardReader(
            source,
            self.checkpoints,
            enqueuer,
            record_filter,
            self.graph,
            self.stats,
            self.owner,
            self.stop,
            ReadOptions(self.options.start, self.options.positions, self.options.page_limit),
            on_finished=self._finished,
        )
        self.scheduler = scheduler or ReadScheduler(
            self.options.readers, self.options.idle_sleep, self.reader.read, self.reader.forget
        )
        self.keeper = LeaseKeeper(
            self.leases,
            self._ready,
            self.stats,
            self.scheduler.idle,
            self._taken,
            self.options.lease_seconds,
        )

    def run(self) -> ProducerStats:
        self.register()
        threads = [
            threading.Thread(target=self._discovery_loop, name="discovery", daemon=True),
            threading.Thread(target=self._lease_loop, name="leases", daemon=True),
        ]
        for thread in threads:
            thread.start()
        self.scheduler.run(self.stop)  # returns once stopped and the pages in hand are done
        self._rediscover.set()
        self._rebalance.set()
        for thread in threads:
            thread.join(JOIN_SECONDS)  # discovery may be in botocore's retries: not waited for
        self.release()
        return self.stats

    def register(self) -> None:
        """Say what ``replicator status`` lists for this consumer (and each of its targets)."""
        status.register(
            self.redis,
            self.consumer,
            self.source.stream_id,
            self.targets,
            self.source.retention_seconds,
            self.options.lease_seconds,
            self.pipeline,
            self.transforms,
        )

    def release(self) -> None:
        """Hand every lease back (the reads have stopped) and leave the live producers."""
        try:
            self.keeper.release_all()
        except (TransientError, redis.RedisError) as exc:
            log.warning("could not release the leases; they expire by themselves", error=str(exc))
        log.info("producer stopped", stream=self.source.stream_id, **self.stats.summary())

    def _taken(self, held: Held) -> None:
        self.stats.shards[held.shard_id] = ShardStatus()  # progress is measured from now
        self.scheduler.add(held)

    def _finished(self, _shard_id: str) -> None:
        self._rediscover.set()  # its children may be listed now
        self._rebalance.set()  # or listed already, and ready now

    def _ready(self) -> list[str]:
        self.graph.refresh(self.checkpoints.load())
        return [shard.shard_id for shard in self.graph.ready()]

    # -- discovery ----------------------------------------------------------------------------

    def _discovery_loop(self) -> None:
        while not self.stop.is_set():
            self._rediscover.wait(self.discovery_step())
            self._rediscover.clear()

    def discovery_step(self) -> float:
        """List the shards once; the seconds until the next time (backing off on failures)."""
        try:
            self._discover()
            self._rebalance.set()
            self._discovery_attempt = 0
            return self.options.discover_every * random.uniform(0.9, 1.1)
        except (TransientError, redis.RedisError) as exc:
            # Throttled (DescribeStream: 10 calls a second per account) or unreachable.
            wait = delay(self._discovery_attempt, 1.0, 60.0)
            self._discovery_attempt += 1
            log.warning(
                "shard discovery failed; retrying",
                error=str(exc),
                attempt=self._discovery_attempt,
                stream=self.source.stream_id,
            )
            return wait

    def discovery_wanted(self) -> bool:
        """A shard finished: its children may be listed now (cleared by asking)."""
        wanted = self._rediscover.is_set()
        self._rediscover.clear()
        return wanted

    def _discover(self) -> None:
        checkpoints = self.checkpoints.load()  # before listing: see ShardGraph.update
        self.graph.refresh(checkpoints)
        fresh, lost = self.graph.update(self.source.shards(), checkpoints)
        for shard_id in lost:
            if self.checkpoints.vanished(shard_id):
                self.reader.gap(shard_id, "the shard was trimmed before it was read to its end")
            self.graph.finish(shard_id)
        retired = self.graph.retired()
        self.checkpoints.forget(retired)
        self.leases.drop(retired)
        status.forget(self.redis, self.consumer, retired)
        for shard in fresh:
            log.info(
                "shard discovered",
                shard=shard.shard_id,
                parents=list(shard.parents),
                closed=shard.closed,
            )

    # -- leases, status -----------------------------------------------------------------------

    def _lease_loop(self) -> None:
        while not self.stop.is_set():
            self.lease_step()
            self._rebalance.wait(self.keeper.tick_seconds)
            self._rebalance.clear()

    def lease_step(self) -> None:
        """Renew, hand over and take leases; publish the shards' state; log it now and then."""
        try:
            self.keeper.tick()
            status.publish(self.redis, self.consumer, self.owner, self.stats.shards)
        except (TransientError, redis.RedisError) as exc:
            log.warning("lease renewal failed; retrying", error=str(exc), consumer=self.consumer)
        now = time.monotonic()
        if now >= self._next_status:
            self._log_status()
            self._next_status = now + self.options.status_every

    def _log_status(self) -> None:
        stream, retention = self.source.stream_id, self.source.retention_seconds
        log.info("producer status", stream=stream, leases=len(self.held()), **self.stats.summary())
        for shard, state in sorted(self.stats.shards.items()):
            if status.retention_used(state.iterator_age, retention) >= status.RETENTION_WARNING:
                log.warning(
                    "the oldest unread record nears the stream's retention",
                    shard=shard,
                    detail=status.retention_warning(stream, shard, state.iterator_age, retention),
                )

    def held(self) -> list[Held]:
        return self.keeper.held()
