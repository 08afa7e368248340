"""A fleet: every pipeline of a pipelines file tailed by one process.

One ``ReadScheduler`` (one pool of ``readers`` threads) reads the shards of every pipeline; one
thread renews, hands over and takes the leases of every pipeline (each pipeline's
``Poller.lease_step``) and one lists their shards (``Poller.discovery_step``). Each pipeline
keeps its own checkpoint name, so producers started with the same file share each pipeline's
shards by its leases, as single-table producers with one name do.

``reload`` (SIGHUP, and every ``reload_every`` seconds) reads the file and its discovery again:

* a new pipeline starts;
* a removed one stops: it takes no more leases, hands each over once its page in hand is
  checkpointed, and leaves its checkpoints in Redis;
* a changed one stops that way, then starts again with its new options.

A pipeline is stopped before it starts again, in this one process, so a shard is never read by
two of its readers at once; across processes the leases see to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import redis

from producer import plans
from producer.enqueue import Enqueuer
from producer.keeper import Held
from producer.poller import JOIN_SECONDS, Poller, PollerOptions, producer_id
from producer.reader import Outcome
from producer.schedule import ReadScheduler
from tasks.coord.redis_conn import connection
from tasks.core import logs
from tasks.core.config import settings
from tasks.core.errors import ReplicatorError
from tasks.core.pipelines import Pipeline

log = logs.get("producer")
RELOAD_SECONDS = 60.0
DISCOVERY_TICK = 0.2  # how often the discovery thread looks for a pipeline that is due


@dataclass
class Running:
    pipeline: Pipeline
    poller: Poller
    next_discovery: float = 0.0


class Fleet:
    def __init__(
        self,
        load: Callable[[], Sequence[Pipeline]],
        options: PollerOptions,
        stop: threading.Event,
        reload: threading.Event | None = None,
        reload_every: float = RELOAD_SECONDS,
    ) -> None:
        self._load, self.options, self.stop = load, options, stop
        self.reload = reload or threading.Event()
        self.reload_every = reload_every
        self.owner = producer_id()
        self.redis: redis.Redis = connection()
        self.wake = threading.Event()  # a pipeline's shards became ready: tick the leases now
        self.scheduler = ReadScheduler(
            options.readers, options.idle_sleep, self._read, self._forget
        )
        self._running: dict[str, Running] = {}  # by pipeline name
        # The readers find a shard's pipeline here without a lock: the scheduler calls them
        # while it holds its own, which the lease thread takes too (a new lease is scheduled).
        # Replaced whole, never changed in place.
        self._by_consumer: dict[str, Poller] = {}
        self._lock = threading.RLock()  # the lease thread and a reload take turns

    # -- what the readers call ----------------------------------------------------------------

    def running(self) -> list[Running]:
        with self._lock:
            return list(self._running.values())

    def _poller(self, held: Held) -> Poller | None:
        return self._by_consumer.get(held.consumer)

    def _read(self, held: Held) -> Outcome:
        poller = self._poller(held)
        return poller.reader.read(held) if poller else Outcome(over=True)

    def _forget(self, held: Held) -> None:
        poller = self._poller(held)
        if poller:
            poller.reader.forget(held)

    # -- running ------------------------------------------------------------------------------

    def run(self, pipelines: Sequence[Pipeline]) -> None:
        """Start ``pipelines`` (checked already), read until ``stop``, hand every lease back."""
        self.apply(pipelines, checked=True)
        threads = [
            threading.Thread(target=target, name=name, daemon=True)
            for name, target in (
                ("leases", self._lease_loop),
                ("discovery", self._discovery_loop),
                ("reload", self._reload_loop),
            )
        ]
        for thread in threads:
            thread.start()
        self.scheduler.run(self.stop)  # returns once stopped and the pages in hand are done
        self.wake.set()
        self.reload.set()
        deadline = time.monotonic() + JOIN_SECONDS  # one wait for all: a bounded stop
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for running in self.running():
            running.poller.release()
        failures = [r.poller.reader.failure for r in self.running() if r.poller.reader.failure]
        if failures:  # a certificate or a password: the producer stops with it (exit 2)
            raise failures[0]

    def apply(self, pipelines: Sequence[Pipeline], checked: bool = False) -> None:
        """Start the new pipelines, stop the removed ones, restart the changed ones; a new
        pipeline's tables and stream are reached first unless ``checked``."""
        wanted = {p.name: p for p in pipelines}
        for running in self.running():
            name = running.pipeline.name
            if wanted.get(name) != running.pipeline:
                self._retire(running, "changed" if name in wanted else "removed")
        for name, pipeline in wanted.items():
            if name not in self._running and not self.stop.is_set():
                self._start(pipeline, checked)

    def _start(self, pipeline: Pipeline, checked: bool) -> None:
        try:
            poller = self._poller_for(pipeline, checked)
        except ReplicatorError as exc:
            log.error("pipeline not started", pipeline=pipeline.name, error=str(exc))
            return
        other = self._by_consumer.get(poller.consumer)
        if other:
            log.error(
                "pipeline not started: another pipeline has its checkpoint name",
                pipeline=pipeline.name,
                other=other.pipeline,
                consumer=poller.consumer,
            )
            return
        poller.register()
        with self._lock:
            self._running[pipeline.name] = Running(pipeline, poller)
            self._by_consumer = {**self._by_consumer, poller.consumer: poller}
        self.wake.set()
        log.info("pipeline started", pipeline=pipeline.name, consumer=poller.consumer)

    def _poller_for(self, pipeline: Pipeline, checked: bool) -> Poller:
        from worker.app import app

        plan = plans.plan(pipeline)
        source = plans.source(plan) if checked else plans.check(plan)
        enqueuer = Enqueuer(
            app,
            self.redis,
            plan.primary.location.spec,
            plan.targets,
            settings().keys_per_message,
        )
        options = replace(self.options, start=plan.start, page_limit=pipeline.page_limit)
        return Poller(
            source,
            plan.consumer(source),
            enqueuer,
            plan.record_filter,
            options,
            client=self.redis,
            owner=self.owner,
            stop=threading.Event(),
            scheduler=self.scheduler,
            wake=self.wake,
            pipeline=pipeline.name,
        )

    def _retire(self, running: Running, why: str) -> None:
        """Stop one pipeline: hand its leases over as its reads end; keep its checkpoints."""
        poller = running.poller
        poller.keeper.close()
        poller.stop.set()  # a page whose enqueue keeps failing is given up, not checkpointed
        self.scheduler.wake()
        deadline = time.monotonic() + poller.keeper.lease_seconds
        while poller.held() and time.monotonic() < deadline:
            with self._lock:
                poller.lease_step()  # releases each lease once no read of it is in flight
            time.sleep(0.05)
        with self._lock:
            self._running.pop(running.pipeline.name, None)
            self._by_consumer = {c: p for c, p in self._by_consumer.items() if c != poller.consumer}
        for held in poller.held():
            held.lost = True  # its read is still in flight after a lease time: its
            # checkpoint is refused once another producer holds the shard
        poller.release()
        log.info("pipeline stopped", pipeline=running.pipeline.name, reason=why)

    # -- the fleet's threads -----------------------------------------------------------------

    def _lease_loop(self) -> None:
        tick = self.options.lease_seconds / 10
        while not self.stop.is_set():
            for running in self.running():
                with self._lock:
                    if running.pipeline.name in self._running:
                        running.poller.lease_step()
            self.wake.wait(tick)
            self.wake.clear()
        for running in self.running():
            running.poller.stop.set()  # an enqueue that keeps failing gives up its page

    def _discovery_loop(self) -> None:
        while not self.stop.is_set():
            for running in self.running():
                now = time.monotonic()
                if running.poller.discovery_wanted() or now >= running.next_discovery:
                    running.next_discovery = now + running.poller.discovery_step()
            self.stop.wait(DISCOVERY_TICK)

    def _reload_loop(self) -> None:
        while not self.stop.is_set():
            self.reload.wait(self.reload_every)
            self.reload.clear()
            if self.stop.is_set():
                return
            try:
                pipelines = self._load()
            except (ReplicatorError, redis.RedisError) as exc:
                log.error("pipelines not reloaded; the running ones go on", error=str(exc))
                continue
            self.apply(pipelines)
