"""Segment diffs over in-memory tables whose segments do NOT line up, with kills and resumes.

Each fake table puts a key in a segment of its own choosing (as two DynamoDB tables may), scans
in its own order and pages; every discrepancy must still be found exactly once.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from tasks.aws.dynamo import Failure
from tasks.core.errors import TransientError
from tasks.core.keys import Key
from tasks.core.typed_json import Item, KeyAttribute, KeySchema, canonical_json
from tasks.diff.segment import DiffOptions, SegmentDiff
from tasks.jobs.memory_store import MemoryJobStore
from tasks.jobs.model import Page, run_segment

SCHEMA = KeySchema(KeyAttribute("id", "S"))


class FakeTable:
    def __init__(self, items: dict[str, Item], salt: str, page: int) -> None:
        self.items, self.salt, self.page = items, salt, page
        self.reads = 0

    def _segment(self, cid: str, segments: int) -> int:
        return int(hashlib.sha256((self.salt + cid).encode()).hexdigest(), 16) % segments

    def scan(
        self, segment: int, segments: int, start_key: Item | None, page_size: int | None
    ) -> Iterator[tuple[list[Item], Item | None]]:
        mine = sorted(
            (c for c in self.items if self._segment(c, segments) == segment),
            key=lambda c: hashlib.md5((self.salt + c).encode()).hexdigest(),
        )
        position = mine.index(canonical_json(start_key)) + 1 if start_key else 0
        while True:
            chunk = mine[position : position + self.page]
            position += len(chunk)
            last = {"id": self.items[chunk[-1]]["id"]} if chunk and position < len(mine) else None
            yield [self.items[c] for c in chunk if c in self.items], last
            if last is None:
                return

    def get(self, keys: Sequence[Key]) -> dict[str, Item]:
        self.reads += len(keys)
        return {k.canonical: self.items[k.canonical] for k in keys if k.canonical in self.items}


def tables(seed: int) -> tuple[FakeTable, FakeTable, dict[str, str]]:
    """A primary and a replica with planted differences, and the expected kind per key."""
    rng = random.Random(seed)
    primary: dict[str, Item] = {}
    replica: dict[str, Item] = {}
    expected: dict[str, str] = {}
    for i in range(400):
        item = {"id": {"S": f"k{i}"}, "v": {"N": str(i)}, "s": {"SS": ["a", "b"]}}
        cid = canonical_json({"id": item["id"]})
        roll = rng.random()
        if roll < 0.05:
            primary[cid] = item
            expected[cid] = "missing"
        elif roll < 0.10:
            replica[cid] = item
            expected[cid] = "extraneous"
        elif roll < 0.15:
            primary[cid], replica[cid] = item, {**item, "v": {"N": str(i + 1)}}
            expected[cid] = "different"
        else:  # equal by DynamoDB's rules, not by text
            primary[cid] = item
            replica[cid] = {**item, "v": {"N": f"{i}.000"}, "s": {"SS": ["b", "a"]}}
    return FakeTable(primary, "p", 7), FakeTable(replica, "r", 11), expected


def make_repair(primary: FakeTable, replica: FakeTable) -> Any:
    def repair(keys: Sequence[Key]) -> Mapping[str, Failure]:
        for key in keys:
            cid = key.canonical
            if cid in primary.items:
                replica.items[cid] = primary.items[cid]
            else:
                replica.items.pop(cid, None)
        return {}

    return repair


def run_all(
    primary: FakeTable,
    replica: FakeTable,
    segments: int,
    *,
    limit: int = 10_000,
    repair: bool = False,
    die_after: int | None = None,
) -> tuple[Counter[str], list[Any]]:
    """Every segment; with ``die_after`` each segment dies after that many pages, then resumes."""
    options = DiffOptions("p", "r", repair=repair, buffer_limit=limit)
    store = MemoryJobStore()
    job = store.create("diff", segments, options.to_params())
    totals: Counter[str] = Counter()
    for segment in range(segments):
        diff = SegmentDiff(
            options,
            segment,
            segments,
            tables={"primary": primary, "replica": replica},
            schema=SCHEMA,
            repair=make_repair(primary, replica) if repair else None,
        )
        if die_after is not None:
            with pytest.raises(TransientError):
                run_segment(store, job, segment, dying(diff.work, die_after))
        totals.update(run_segment(store, job, segment, diff.work))
    return totals, [json.loads(r) for r in store.records(job.id, 0)]


def dying(work: Any, pages: int) -> Any:
    def wrapped(checkpoint: Any) -> Iterator[Page]:
        for n, page in enumerate(work(checkpoint)):
            if n == pages:
                raise TransientError("worker killed")
            yield page
        raise TransientError("worker killed at the end")

    return wrapped


def found(records: list[Any]) -> dict[str, str]:
    keys = [canonical_json(r["key"]) for r in records]
    assert len(keys) == len(set(keys)), "a discrepancy was reported twice"
    return {canonical_json(r["key"]): r["kind"] for r in records}


@pytest.mark.parametrize("segments", [1, 3, 8])
@pytest.mark.parametrize("limit", [10_000, 5])
def test_misaligned_segments_find_every_discrepancy_once(segments: int, limit: int) -> None:
    primary, replica, expected = tables(seed=segments)

    totals, records = run_all(primary, replica, segments, limit=limit)

    assert found(records) == expected
    assert totals["compared"] == len(set(primary.items) | set(replica.items))
    assert sum(totals[k] for k in ("missing", "extraneous", "different")) == len(expected)


def test_killed_segments_resume_and_count_nothing_twice() -> None:
    primary, replica, expected = tables(seed=42)

    totals, records = run_all(primary, replica, 4, die_after=3)

    assert found(records) == expected
    assert totals["compared"] == len(set(primary.items) | set(replica.items))
    assert totals["scanned"] == len(primary.items) + len(replica.items)


def test_repairs_interrupted_after_their_page_are_done_on_resume() -> None:
    primary, replica, expected = tables(seed=7)

    totals, _ = run_all(primary, replica, 3, repair=True, die_after=1)

    repaired = sum(totals[f"repaired_{k}"] for k in ("missing", "extraneous", "different"))
    assert repaired == len(expected)
    assert set(replica.items) == set(primary.items)
    again, records = run_all(primary, replica, 3)
    assert records == [] and again["compared"] == len(primary.items)


def test_aligned_equal_tables_read_each_item_once_per_side() -> None:
    items = {canonical_json({"id": {"S": f"k{i}"}}): {"id": {"S": f"k{i}"}} for i in range(300)}
    primary, replica = FakeTable(dict(items), "same", 7), FakeTable(dict(items), "same", 7)

    totals, records = run_all(primary, replica, 4)

    assert records == [] and primary.reads == replica.reads == 0
    assert totals["reads"] == 600 and totals["compared"] == 300
