"""Compare (and repair, or backfill) one scan segment of a primary and a replica table.

One *step* reads a page of segment I from each table, pairs the keys (``tasks.diff.match``),
confirms every candidate with strongly consistent reads of both sides (two rounds of batched
reads per step, whatever the number of candidates), and yields a
``tasks.jobs.Page``: counts, the checkpoint (both scans' positions and the keys still waiting
for a partner) and one record per confirmed discrepancy. Equal pairs cost one scan read per side
and nothing more, so a diff reads about two items per key instead of the original's four.

With ``repair`` the confirmed keys go to ``tasks.replication.sync.sync_keys`` (consistent primary
read, put or delete on the replica, batched, stale-write guard) *after* the page that found them was
checkpointed with the keys marked pending, so a segment killed between the two repeats the
repair, not the count. ``backfill`` scans the primary only and syncs every key it finds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass, field
from typing import Any

from tasks.aws import dynamo
from tasks.aws.consumed import Meter, metered
from tasks.aws.dynamo import Failure
from tasks.coord import stats
from tasks.coord.ratelimit import RateLimiter
from tasks.coord.redis_conn import connection
from tasks.core.config import settings
from tasks.core.keys import Key
from tasks.core.transform import TransformSpec
from tasks.core.transform import load as load_transform
from tasks.core.typed_json import (
    Item,
    KeySchema,
    from_wire,
    key_json,
    to_wire,
)
from tasks.diff.match import (
    DIFFERENT,
    PAIR,
    PRIMARY,
    PRIMARY_ONLY,
    REPLICA,
    REPLICA_ONLY,
    SIDES,
    Matcher,
    Seen,
    differing_attributes,
    judge,
)
from tasks.diff.reads import DynamoTable, ReadAhead, Side, Transformed
from tasks.jobs.model import Job, Page, Work
from tasks.replication.sync import ReplicaSink, sync_keys

Repair = Callable[[Sequence[Key]], Mapping[str, Failure]]


@dataclass(frozen=True)
class DiffOptions:
    """Everything a segment needs to know; travels as JSON in the job record."""

    primary: str
    replica: str
    ignore: tuple[str, ...] = ()
    repair: bool = False
    backfill: bool = False
    page_size: int | None = None
    rate: float | None = None
    item_bytes: dict[str, float] | None = None  # a share rate's planned item sizes, by side
    buffer_limit: int = 10_000
    transform: dict[str, Any] | None = None  # TransformSpec.to_params: compare t(primary)

    def to_params(self) -> dict[str, Any]:
        return {**asdict(self), "ignore": list(self.ignore)}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> DiffOptions:
        return cls(**{**params, "ignore": tuple(params.get("ignore", ()))})


@dataclass
class _State:
    """The checkpoint: where each scan is, keys waiting for a partner, repairs not yet done."""

    lek: dict[str, Any] = field(default_factory=lambda: {PRIMARY: None, REPLICA: None})
    done: dict[str, bool] = field(default_factory=lambda: {PRIMARY: False, REPLICA: False})
    matcher: Matcher = field(default_factory=Matcher)
    repairs: list[list[str]] = field(default_factory=list)  # [kind, key JSON]

    def to_json(self) -> dict[str, Any]:
        return {
            "lek": self.lek,
            "done": self.done,
            "waiting": self.matcher.to_json(),
            "repairs": self.repairs,
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any] | None, limit: int, ignore: tuple[str, ...]
    ) -> _State:
        data = data or {}
        state = cls(matcher=Matcher.from_json(data.get("waiting"), limit, ignore))
        state.lek.update(data.get("lek", {}))
        state.done.update(data.get("done", {}))
        state.repairs = list(data.get("repairs", []))
        return state


@dataclass
class _Step:
    """What one step found; becomes a Page."""

    counts: dict[str, int] = field(default_factory=dict)
    found: list[tuple[str, str, Item | None, Item | None]] = field(default_factory=list)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


def record(
    kind: str,
    cid: str,
    primary: Item | None = None,
    replica: Item | None = None,
    ignore: Sequence[str] = (),
) -> str:
    """A discrepancy as one JSON line: kind, key, what each side has (never item images)."""
    line: dict[str, Any] = {"kind": kind, "key": json.loads(cid)}
    if kind != "backfill":
        line["primary"] = "present" if primary is not None else "absent"
        line["replica"] = "present" if replica is not None else "absent"
    if kind == DIFFERENT and primary is not None and replica is not None:
        line["attributes"] = differing_attributes(primary, replica, ignore)
    return json.dumps(line, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _key(cid: str) -> Key:
    return Key.from_canonical(cid)


class SegmentDiff:
    """The work of one segment, as ``tasks.jobs.model.run_segment`` wants it (``work``)."""

    def __init__(
        self,
        options: DiffOptions,
        segment: int,
        segments: int,
        *,
        tables: Mapping[str, Side],
        schema: KeySchema,
        repair: Repair | None = None,
        limiter: RateLimiter | None = None,
        meter: Meter | None = None,
    ) -> None:
        self.options, self.segment, self.segments = options, segment, segments
        self.tables, self.schema, self.repair, self.limiter = tables, schema, repair, limiter
        self.meter = meter  # what the tables' calls consumed (the limiter is charged by it)
        self.ignore = options.ignore
        self.cid = key_json(schema)  # canonical key JSON of a scanned item

    # -- reads ---------------------------------------------------------------------------------

    def _pages(self, side: str, state: _State) -> ReadAhead:
        start = from_wire(state.lek[side]) if state.lek[side] else None
        pages = self.tables[side].scan(self.segment, self.segments, start, self.options.page_size)
        return ReadAhead(pages)

    def _get(self, side: str, cids: Sequence[str], step: _Step) -> dict[str, Item]:
        if not cids:
            return {}
        step.add("reads", len(cids))
        found = self.tables[side].get([_key(c) for c in cids])
        self._pay(len(cids))
        return found

    def _pay(self, items: int) -> None:
        """Charge the limiter for what was just read (and repaired since the last charge)."""
        if self.limiter:
            meter, planned, backfill = self.meter, self.options.item_bytes, self.options.backfill
            self.limiter.take(meter.cost(items, planned, one_op=backfill) if meter else items)

    def _next_page(self, side: str, scan: ReadAhead, state: _State, step: _Step) -> list[Item]:
        items, lek = next(scan)
        state.lek[side] = to_wire(lek) if lek else None
        state.done[side] = lek is None
        step.add("scanned", len(items))
        step.add("reads", len(items))
        self._pay(len(items))
        return items

    # -- diff ----------------------------------------------------------------------------------

    def work(self, checkpoint: Any) -> Iterator[Page]:
        state = _State.from_json(checkpoint, self.options.buffer_limit, self.ignore)
        if state.repairs:
            yield self._repair(state)
        if self.options.backfill:
            yield from self._backfill(state)
            return
        with ExitStack() as stack:
            scans = {
                side: stack.enter_context(closing(self._pages(side, state)))
                for side in SIDES
                if not state.done[side]
            }
            while not all(state.done.values()):
                yield from self._step(scans, state)

    def _step(self, scans: Mapping[str, ReadAhead], state: _State) -> Iterator[Page]:
        """One page of each side not done yet: pair, resolve, confirm, emit."""
        step = _Step()
        differ: list[str] = []
        for side in SIDES:
            if not state.done[side]:
                items = self._next_page(side, scans[side], state, step)
                differ += self._offer(side, items, state, step)
        # after both pages were offered, so that they could pair first
        alone = {side: state.matcher.overflow(side) for side in SIDES}
        if all(state.done.values()):
            for side in SIDES:
                alone[side] += state.matcher.take(side)
        self._check(differ, alone, state, step)
        state.matcher.compact()
        yield from self._emit(state, step)

    def _offer(self, side: str, items: list[Item], state: _State, step: _Step) -> list[str]:
        """Pair a page's keys; the pairs whose images differ."""
        offer = state.matcher.offer(side, [(self.cid(i), i) for i in items])
        step.add("compared", offer.pairs)
        return offer.differ

    def _check(
        self,
        differ: list[str],
        alone: Mapping[str, list[tuple[str, Seen]]],
        state: _State,
        step: _Step,
    ) -> None:
        """Confirm pairs whose images differ, and resolve keys without a partner in this segment
        by point-reading the other side, in two rounds of consistent reads (each side's keys of
        a round in one batch)."""
        primaries = [c for c, _ in alone[PRIMARY]]
        replicas = [c for c, _ in alone[REPLICA]]
        first = self._read({PRIMARY: differ + replicas, REPLICA: differ + primaries}, step)
        suspects = [
            c
            for c, seen in alone[PRIMARY]
            if c not in first[REPLICA] or not state.matcher.same(seen, first[REPLICA][c])
        ]
        orphans = [c for c in replicas if c not in first[PRIMARY]]  # others: the primary's
        step.add("compared", len(primaries) + len(orphans))
        second = self._read({PRIMARY: suspects, REPLICA: orphans}, step)
        self._judge(PAIR, differ, first, step)
        self._judge(PRIMARY_ONLY, suspects, {**first, PRIMARY: second[PRIMARY]}, step)
        self._judge(REPLICA_ONLY, orphans, {**first, REPLICA: second[REPLICA]}, step)

    def _read(self, wanted: Mapping[str, list[str]], step: _Step) -> dict[str, dict[str, Item]]:
        return {side: self._get(side, cids, step) for side, cids in wanted.items()}

    def _judge(
        self, origin: str, cids: list[str], reads: Mapping[str, dict[str, Item]], step: _Step
    ) -> None:
        """Judge keys by strongly consistent reads of both sides."""
        for cid in cids:
            primary, replica = reads[PRIMARY].get(cid), reads[REPLICA].get(cid)
            kind = judge(origin, primary, replica, self.ignore)
            if kind:
                step.found.append((kind, cid, primary, replica))

    def _emit(self, state: _State, step: _Step) -> Iterator[Page]:
        for kind, _, _, _ in step.found:
            step.add(kind)
        lines = [record(k, c, p, r, self.ignore) for k, c, p, r in step.found]
        if self.options.repair:
            state.repairs = [[k, c] for k, c, _, _ in step.found]
        yield Page(step.counts, state.to_json(), lines)
        if state.repairs:
            yield self._repair(state)

    def _repair(self, state: _State) -> Page:
        """Make the replica match the primary for the pending keys; count what was repaired."""
        assert self.repair is not None, "repairs pending but no repair function"
        failed = self.repair([_key(c) for _, c in state.repairs])
        counts: dict[str, int] = {}
        for kind, cid in state.repairs:
            name = "repair_failed" if cid in failed else f"repaired_{kind}"
            counts[name] = counts.get(name, 0) + 1
        state.repairs = []
        return Page(counts, state.to_json())

    # -- backfill ------------------------------------------------------------------------------

    def _backfill(self, state: _State) -> Iterator[Page]:
        with closing(self._pages(PRIMARY, state)) as scan:
            yield from self._backfill_pages(scan, state)

    def _backfill_pages(self, scan: ReadAhead, state: _State) -> Iterator[Page]:
        while not state.done[PRIMARY]:
            step = _Step()
            cids = [self.cid(i) for i in self._next_page(PRIMARY, scan, state, step)]
            assert self.repair is not None, "backfill needs a repair function"
            failed = self.repair([_key(c) for c in cids]) if cids else {}
            step.add("reads", len(cids))  # sync_keys reads each key again, consistently
            step.add("backfilled", len(cids) - len(failed))
            step.add("backfill_failed", len(failed))
            yield Page(
                step.counts,
                state.to_json(),
                [record("backfill", c) for c in cids if c not in failed],
            )


# -- wiring for real tables ----------------------------------------------------------------------


def segment_diff(options: DiffOptions, segment: int, segments: int, job_id: str) -> SegmentDiff:
    """A SegmentDiff over the real tables (schemas checked), with repair and rate limit wired."""
    cfg, meter = settings(), Meter()
    primary = metered(cfg.table(options.primary), meter)
    replica = metered(cfg.table(options.replica, REPLICA), meter)
    schema = dynamo.same_schema(primary, replica)

    shape = TransformSpec.from_params(options.transform)
    loaded = None if shape.empty else load_transform(shape, schema.names)

    def repair(keys: Sequence[Key]) -> Mapping[str, Failure]:
        failed = sync_keys(primary, ReplicaSink(replica, shape), keys).failed
        stats.flush_throttles(connection())  # the limiter's next take sees their throttling
        return failed

    writes = options.repair or options.backfill
    # A writing job slows down while the replica throttles; a reading one (a verify pass) while
    # the primary does, where live replication reads every key it applies.
    watch = replica if writes else primary
    limiter = RateLimiter(connection(), job_id, options.rate, watch) if options.rate else None
    seen: Side = (
        DynamoTable(primary) if loaded is None else Transformed(DynamoTable(primary), loaded)
    )
    tables = {PRIMARY: seen, REPLICA: DynamoTable(replica)}
    return SegmentDiff(
        options,
        segment,
        segments,
        tables=tables,
        schema=schema,
        repair=repair if writes else None,
        limiter=limiter,
        meter=meter,
    )


def diff_work(job: Job, segment: int) -> Work:
    """Segment ``segment`` of a diff job, for ``tasks.jobs.model.run_segment``."""
    return segment_diff(DiffOptions.from_params(job.params), segment, job.segments, job.id).work
