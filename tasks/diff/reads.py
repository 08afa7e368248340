"""The reads of a segment diff: one side's scan pages and consistent point reads.

``Side`` is what ``tasks.diff.segment.SegmentDiff`` reads through: ``DynamoTable`` for real tables
(``tasks.aws.dynamo``), or an in-memory table in tests. ``ReadAhead`` keeps the next scan page in
flight while the current one is compared.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from tasks.aws import dynamo
from tasks.core.errors import PermanentError, TransientError
from tasks.core.keys import Key
from tasks.core.locations import Table
from tasks.core.transform import Transform
from tasks.core.typed_json import Item

ScanPage = tuple[list[Item], Item | None]


class Side(Protocol):
    """One side's reads: a segment's scan pages and strongly consistent point reads."""

    def scan(
        self, segment: int, segments: int, start_key: Item | None, page_size: int | None
    ) -> Iterator[ScanPage]: ...

    def get(self, keys: Sequence[Key]) -> dict[str, Item]:
        """Items that exist, by canonical key JSON; raises when a key could not be read."""


@dataclass(frozen=True)
class DynamoTable:
    table: Table

    def scan(
        self, segment: int, segments: int, start_key: Item | None, page_size: int | None
    ) -> Iterator[ScanPage]:
        return dynamo.scan_pages(
            self.table,
            segment,
            segments,
            start_key,
            consistent=False,
            page_size=page_size,
        )

    def get(self, keys: Sequence[Key]) -> dict[str, Item]:
        result = dynamo.batch_get(self.table, keys, consistent=True)
        if result.failed:
            first = next(iter(result.failed.values()))
            error = TransientError if first.retryable else PermanentError
            raise error(f"could not read {len(result.failed)} keys of {self.table}: {first.reason}")
        return result.found


class ReadAhead:
    """A scan whose next page is read in the background while the current one is compared,
    so that the table and this process work at the same time."""

    def __init__(self, pages: Iterator[ScanPage]) -> None:
        self._pages = pages
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan")
        self._next: Future[ScanPage] = self._pool.submit(next, pages)

    def __next__(self) -> ScanPage:
        page = self._next.result()
        if page[1] is not None:
            self._next = self._pool.submit(next, self._pages)
        return page

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class Transformed:
    """A side seen through a transform (the primary, when the replica holds ``t(item)``): items
    the transform leaves out are absent from its pages and its reads."""

    side: Side
    transform: Transform

    def scan(
        self, segment: int, segments: int, start_key: Item | None, page_size: int | None
    ) -> Iterator[ScanPage]:
        for items, last in self.side.scan(segment, segments, start_key, page_size):
            yield self.transform.items(items)[0], last

    def get(self, keys: Sequence[Key]) -> dict[str, Item]:
        found = self.side.get(keys)
        shaped = {k: self.transform(item) for k, item in found.items()}
        return {k: item for k, item in shaped.items() if item is not None}
