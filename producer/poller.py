"""The read loop: discover shards, read each ready shard, enqueue, checkpoint, repeat.

At-least-once: a shard's checkpoint advances only after every key of the page was sent. On
SIGTERM/SIGINT the page in hand is finished and checkpointed before the loop returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from producer.checkpoints import Checkpoints
from producer.enqueue import Enqueuer
from producer.filters import RecordFilter
from producer.records import ChangeRecord, MalformedRecordError
from producer.shards import ShardGraph
from producer.sources import SHARD_END, Page, Position, ShardInfo, Source, sequence_at_least
from producer.stats import ProducerStats
from tasks.core import logs
from tasks.core.backoff import delay
from tasks.core.errors import ExpiredIteratorError, TransientError, TrimmedDataError

log = logs.get("producer")
TRIM_HORIZON = Position("TRIM_HORIZON")


@dataclass
class PollerOptions:
    start: Position = TRIM_HORIZON
    page_limit: int = 1000
    idle_sleep: float = 0.1
    discover_every: float = 10.0
    status_every: float = 10.0


@dataclass
class Poller:
    source: Source
    checkpoints: Checkpoints
    enqueuer: Enqueuer
    record_filter: RecordFilter
    options: PollerOptions = field(default_factory=PollerOptions)
    stop: threading.Event = field(default_factory=threading.Event)
    stats: ProducerStats = field(default_factory=ProducerStats)
    _iterators: dict[str, str | None] = field(default_factory=dict)

    def run(self) -> ProducerStats:
        graph = ShardGraph(self.checkpoints.load())
        clock = {"discover": 0.0, "status": 0.0}
        failures = 0
        while not self.stop.is_set():
            try:
                busy = self._cycle(graph, clock)
                failures = 0
            except (TransientError, redis.RedisError) as exc:
                # The endpoint or Redis is away: nothing was checkpointed past what was sent.
                log.warning("producer cycle failed; retrying", error=str(exc), attempt=failures)
                self.stop.wait(delay(failures, 0.5, 10.0))
                failures += 1
                continue
            if not busy:
                self.stop.wait(self.options.idle_sleep)
        log.info("producer stopped", stream=self.source.stream_id, **self.stats.summary())
        return self.stats

    def _cycle(self, graph: ShardGraph, clock: dict[str, float]) -> bool:
        """Discover when due, then read one page of every ready shard; True if any had records."""
        now = time.monotonic()
        if now >= clock["discover"]:
            self._discover(graph)
            clock["discover"] = now + self.options.discover_every
        busy = False
        for shard in graph.ready():
            if self.stop.is_set():
                break
            busy |= self._poll(graph, shard)
            if graph.finished(shard.shard_id):
                clock["discover"] = 0.0  # its children may be listed now
        if now >= clock["status"]:
            log.info("producer status", stream=self.source.stream_id, **self.stats.summary())
            clock["status"] = now + self.options.status_every
        return busy

    def _discover(self, graph: ShardGraph) -> None:
        fresh, lost = graph.update(self.source.shards())
        for shard_id in lost:
            self._gap(shard_id, "the shard was trimmed before it was read to its end")
            graph.finish(shard_id)
        self.checkpoints.forget(graph.retired())
        for shard in fresh:
            log.info(
                "shard discovered",
                shard=shard.shard_id,
                parents=list(shard.parents),
                closed=shard.closed,
            )

    def _gap(self, shard_id: str, why: str) -> None:
        self.stats.gaps += 1
        log.error(
            "gap in the change stream: changes were lost to retention; run diff-tables "
            "--repair to resynchronise",
            shard=shard_id,
            reason=why,
        )

    def _start_position(self, graph: ShardGraph, shard: ShardInfo) -> Position:
        checkpoint = graph.checkpoints.get(shard.shard_id)
        if checkpoint and checkpoint != SHARD_END:
            return Position("AFTER_SEQUENCE_NUMBER", sequence=checkpoint)
        if any(graph.finished(p) for p in shard.parents):
            return TRIM_HORIZON  # a child continues where its parent ended
        start = self.options.start
        if start.kind == "AT_TIMESTAMP" and not self.source.supports_timestamp:
            return TRIM_HORIZON  # the filter drops records older than the start time
        return start

    def _acquire(self, graph: ShardGraph, shard: ShardInfo) -> str:
        position = self._start_position(graph, shard)
        try:
            return self.source.iterator(shard.shard_id, position)
        except TrimmedDataError:
            self._gap(shard.shard_id, f"checkpoint {position.sequence} is older than retention")
            return self.source.iterator(shard.shard_id, TRIM_HORIZON)

    def _poll(self, graph: ShardGraph, shard: ShardInfo) -> bool:
        """Read one page of a shard; True when more records are waiting right away."""
        shard_id = shard.shard_id
        try:
            iterator = self._iterators.get(shard_id) or self._acquire(graph, shard)
            page = self.source.read(iterator, self.options.page_limit)
        except ExpiredIteratorError:
            log.info("shard iterator expired; re-acquiring from the checkpoint", shard=shard_id)
            self._iterators[shard_id] = None
            return True
        except TrimmedDataError:
            self._gap(shard_id, "records behind the iterator were trimmed")
            self._iterators[shard_id] = self.source.iterator(shard_id, TRIM_HORIZON)
            return True
        records = self._parse(page.records)
        self.stats.records_read += len(page.records)
        if not self._deliver(records):
            return False
        self._advance(graph, shard, page)
        self._track_lag(shard_id, page, records)
        # At the tip a shard is read again after the poll interval, which also lets a burst of
        # changes to one key gather into one page (and one primary read).
        return len(page.records) >= self.options.page_limit or (page.behind_ms or 0) > 0

    def _deliver(self, records: Sequence[ChangeRecord]) -> bool:
        """Filter and enqueue; retries sending until it works or we are told to stop."""
        kept = [r for r in records if self.record_filter.keep(r)]
        self.stats.records_filtered += len(records) - len(kept)
        attempt = 0
        while True:
            try:
                before = self.enqueuer.sent_keys, self.enqueuer.coalesced_keys
                self.enqueuer.enqueue(kept)
                self.stats.keys_enqueued += self.enqueuer.sent_keys - before[0]
                self.stats.keys_coalesced += self.enqueuer.coalesced_keys - before[1]
                return True
            except Exception as exc:
                log.warning("enqueue failed; retrying", error=str(exc), attempt=attempt)
                if self.stop.wait(delay(attempt, 0.5, 10.0)) or attempt > 1000:
                    return False
                attempt += 1

    def _parse(self, raws: Sequence[Mapping[str, Any]]) -> list[ChangeRecord]:
        records = []
        for raw in raws:
            try:
                records.append(self.source.parse(raw))
            except MalformedRecordError as exc:
                self.stats.records_malformed += 1
                log.error("malformed stream record skipped", error=str(exc))
        return records

    def _advance(self, graph: ShardGraph, shard: ShardInfo, page: Page) -> None:
        shard_id = shard.shard_id
        if page.last_sequence:
            self.checkpoints.save(shard_id, page.last_sequence)
            graph.checkpoint(shard_id, page.last_sequence)
        self._iterators[shard_id] = page.next_iterator
        checkpoint = graph.checkpoints.get(shard_id) or "0"
        drained = page.next_iterator is None or (
            shard.closed
            and not page.records
            and sequence_at_least(checkpoint, shard.ending_sequence or "0")
        )
        if drained:
            self.checkpoints.finish(shard_id)
            graph.finish(shard_id)
            self._iterators.pop(shard_id, None)
            self.stats.lag_seconds.pop(shard_id, None)
            self.stats.shards_finished += 1
            log.info("shard finished", shard=shard_id)

    def _track_lag(self, shard_id: str, page: Page, records: Sequence[ChangeRecord]) -> None:
        """Seconds from the newest change read to now (0 at the shard's tip)."""
        if shard_id not in self._iterators:  # finished and retired
            return
        newest = max((r.created for r in records), default=0.0)
        lag = max(0.0, time.time() - newest) if newest else (page.behind_ms or 0) / 1000
        self.stats.lag_seconds[shard_id] = lag
