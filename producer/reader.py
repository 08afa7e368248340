"""Reading one page of one shard: GetRecords, parse, filter, enqueue, then the fenced checkpoint.

At-least-once: a shard's checkpoint advances only after every key of the page was sent, and only
while this producer still holds the shard's lease (``Checkpoints.save`` compares the lease's
token). A refused checkpoint means the lease moved on: the shard is dropped here at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from producer.checkpoints import Checkpoints
from producer.enqueue import Enqueuer
from producer.filters import RecordFilter
from producer.keeper import Held
from producer.records import ChangeRecord, MalformedRecordError
from producer.shards import ShardGraph
from producer.sources import SHARD_END, Page, Position, ShardInfo, Source, sequence_at_least
from producer.stats import ProducerStats, ShardStatus
from tasks.coord import reach
from tasks.core import logs
from tasks.core.backoff import delay
from tasks.core.errors import ConfigurationError, ExpiredIteratorError, TrimmedDataError

log = logs.get("producer")
TRIM_HORIZON = Position("TRIM_HORIZON")


@dataclass
class ReadOptions:
    start: Position = TRIM_HORIZON
    positions: Mapping[str, Position] = field(default_factory=dict)  # explicit, per shard
    page_limit: int = 1000


@dataclass
class Outcome:
    """What a page read says about when to read the shard again."""

    more: bool = False  # records came or are waiting: read again as soon as the rate allows
    over: bool = False  # finished, lost or stopping: do not read it again


@dataclass
class ShardReader:
    source: Source
    checkpoints: Checkpoints
    enqueuer: Enqueuer
    record_filter: RecordFilter
    graph: ShardGraph
    stats: ProducerStats
    owner: str
    stop: threading.Event
    options: ReadOptions = field(default_factory=ReadOptions)
    on_finished: Callable[[str], None] = lambda _shard: None
    # a failure retrying cannot mend (a certificate, a password): the producer stops with it
    failure: ConfigurationError | None = None
    _iterators: dict[str, tuple[int, str | None]] = field(default_factory=dict)

    def read(self, held: Held) -> Outcome:
        """Read and deliver one page of ``held``'s shard."""
        shard_id = held.shard_id
        try:
            iterator = self._iterator(held)
            page = self.source.read(iterator, self.options.page_limit)
        except ExpiredIteratorError:
            log.info("shard iterator expired; re-acquiring from the checkpoint", shard=shard_id)
            self._iterators.pop(shard_id, None)
            return Outcome(more=True)
        except TrimmedDataError:
            self.gap(shard_id, "records behind the iterator were trimmed")
            self._iterators[shard_id] = (held.token, self.source.iterator(shard_id, TRIM_HORIZON))
            return Outcome(more=True)
        records = self._parse(page.records)
        self.stats.add(records_read=len(page.records))
        if not self._deliver(held, records):
            return Outcome(over=self.stop.is_set() or not held.active)
        return self._advance(held, page, records)

    def forget(self, held: Held) -> None:
        """Drop what was kept for reading ``held`` (unless a newer lease of the shard uses it)."""
        token, _ = self._iterators.get(held.shard_id, (held.token, None))
        if token == held.token:
            self._iterators.pop(held.shard_id, None)
            self.stats.shards.pop(held.shard_id, None)

    def _iterator(self, held: Held) -> str:
        token, iterator = self._iterators.get(held.shard_id, (0, None))
        if token == held.token and iterator:
            return iterator
        iterator = self._acquire(held)
        self._iterators[held.shard_id] = (held.token, iterator)
        return iterator

    def _start_position(self, held: Held) -> Position:
        checkpoint = held.checkpoint
        if checkpoint and checkpoint != SHARD_END:
            return Position("AFTER_SEQUENCE_NUMBER", sequence=checkpoint)
        shard = self.graph.info(held.shard_id)
        if shard and any(self.graph.finished(p) for p in shard.parents):
            return TRIM_HORIZON  # a child continues where its parent ended
        start = self.options.positions.get(held.shard_id, self.options.start)
        if start.kind == "AT_TIMESTAMP" and not self.source.supports_timestamp:
            return TRIM_HORIZON  # the filter drops records older than the start time
        return start

    def _acquire(self, held: Held) -> str:
        position = self._start_position(held)
        try:
            return self.source.iterator(held.shard_id, position)
        except TrimmedDataError:
            self.gap(held.shard_id, f"checkpoint {position.sequence} is older than retention")
            return self.source.iterator(held.shard_id, TRIM_HORIZON)

    def gap(self, shard_id: str, why: str) -> None:
        self.stats.add(gaps=1)
        log.error(
            "gap in the change stream: changes were lost to retention; run diff-tables "
            "--repair to resynchronise",
            shard=shard_id,
            reason=why,
        )

    def _parse(self, raws: Sequence[Mapping[str, Any]]) -> list[ChangeRecord]:
        records = []
        for raw in raws:
            try:
                records.append(self.source.parse(raw))
            except MalformedRecordError as exc:
                self.stats.add(records_malformed=1)
                log.error("malformed stream record skipped", error=str(exc))
        return records

    def _deliver(self, held: Held, records: Sequence[ChangeRecord]) -> bool:
        """Filter and enqueue; retries sending until it works, we stop, or the lease is gone;
        a failure no retry mends (``reach.fatal``) stops the producer."""
        kept = [r for r in records if self.record_filter.keep(r)]
        self.stats.add(records_filtered=len(records) - len(kept))
        attempt = 0
        while True:
            try:
                sent, coalesced = self.enqueuer.enqueue(kept)
                self.stats.add(keys_enqueued=sent, keys_coalesced=coalesced)
                return True
            except Exception as exc:
                failure = reach.fatal(exc, "the broker or Redis")
                if failure is not None:
                    log.error("enqueue failed; stopping", error=str(failure))
                    self.failure = failure
                    self.stop.set()
                    return False
                log.warning("enqueue failed; retrying", error=str(exc), attempt=attempt)
                if self.stop.wait(delay(attempt, 0.5, 10.0)) or not held.active:
                    return False
                attempt += 1

    def _advance(self, held: Held, page: Page, records: Sequence[ChangeRecord]) -> Outcome:
        shard_id = held.shard_id
        status = self.stats.shards.setdefault(shard_id, ShardStatus())
        if page.last_sequence:
            if not self._save(held, page.last_sequence):
                return Outcome(over=True)
            held.checkpoint = page.last_sequence
            status.progress_at = time.time()
        self._iterators[shard_id] = (held.token, page.next_iterator)
        if self._drained(held, page):
            if self._save(held, SHARD_END):
                held.done = True
                self.graph.finish(shard_id)
                self.forget(held)
                self.stats.add(shards_finished=1)
                log.info("shard finished", shard=shard_id)
                self.on_finished(shard_id)
            return Outcome(over=True)
        self._track(status, page, records)
        return Outcome(more=bool(page.records) or (page.behind_ms or 0) > 0)

    def _drained(self, held: Held, page: Page) -> bool:
        shard: ShardInfo | None = self.graph.info(held.shard_id)
        return page.next_iterator is None or (
            shard is not None
            and shard.closed
            and not page.records
            and sequence_at_least(held.checkpoint or "0", shard.ending_sequence or "0")
        )

    def _save(self, held: Held, sequence: str) -> bool:
        if self.checkpoints.save(held.shard_id, sequence, self.owner, held.token):
            return True
        held.lost = True
        self.forget(held)
        self.stats.add(checkpoints_refused=1)
        log.warning(
            "checkpoint refused: the shard's lease is held by another producer now; "
            "this producer stops reading it",
            shard=held.shard_id,
            sequence=sequence,
        )
        return False

    def _track(self, status: ShardStatus, page: Page, records: Sequence[ChangeRecord]) -> None:
        """Lag (newest change read), iterator age, and progress when the shard is at its tip."""
        now = time.time()
        status.pages += 1
        newest = max((r.created for r in records), default=0.0)
        status.lag = max(0.0, now - newest) if newest else (page.behind_ms or 0) / 1000
        if page.behind_ms is not None:
            status.iterator_age = page.behind_ms / 1000
        else:
            last = records[-1].created if records else 0.0
            status.iterator_age = max(0.0, now - last) if last else 0.0
        if not page.records and not page.behind_ms:
            status.progress_at = now
