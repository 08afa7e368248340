"""Rates given as items per second or as a share of the tables' capacity.

``--rate 400`` is items per second; ``--rate 50%`` a share of what the tables' capacity allows
for their average item size: for a provisioned table, its read (or write) units over the units
an item costs; for an on-demand table, ``ON_DEMAND_ITEMS_PER_SECOND``. Where several tables are
involved the smallest bound wins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tasks.aws.definitions import Definition
from tasks.core.errors import InvalidInputError

ON_DEMAND_ITEMS_PER_SECOND = 4000.0
"""What ``N%`` is a share of for an on-demand table: a new on-demand table's initial peak
(4,000 write units per second) for items of up to 1 KB."""
SCAN_AND_READ_UNITS = 1.5
"""Read units per 4 KB per backfilled item: an eventually consistent scan (0.5) and the
strongly consistent re-read before the write (1)."""
SCAN_UNITS = 0.5
"""Read units per 4 KB per item of an eventually consistent scan (a verify pass's reads)."""


@dataclass(frozen=True)
class Rate:
    """``--rate``: items/s (``400``) or a share of capacity (``50%``)."""

    value: float
    share: bool

    @classmethod
    def parse(cls, text: str) -> Rate:
        raw = text.strip()
        share = raw.endswith("%")
        try:
            value = float(raw[:-1] if share else raw)
        except ValueError:
            raise InvalidInputError(
                f"--rate must be items per second (400) or a share of capacity (50%), got {text!r}"
            ) from None
        if not value > 0 or (share and value > 100):
            raise InvalidInputError(f"--rate must be above 0 (and at most 100%), got {text!r}")
        return cls(value / 100 if share else value, share)

    def items_per_second(self, source: Definition, target: Definition | None) -> float:
        """A backfill's: SOURCE scanned and re-read, TARGET written."""
        if not self.share:
            return self.value
        bounds = [read_items(source, SCAN_AND_READ_UNITS)]
        if target is not None:
            bounds.append(write_items(target))
        return self.value * min(bounds)

    def scan_items_per_second(self, tables: Sequence[Definition]) -> float:
        """A sweep's: every table scanned once (eventually consistent)."""
        if not self.share:
            return self.value
        return self.value * min(read_items(table, SCAN_UNITS) for table in tables)

    def item_bytes(self, **by_side: Definition | None) -> dict[str, float] | None:
        """A share's planned item size per side (a table not there yet: 1 byte), which a job's
        consumed capacity is measured against (``tasks.aws.consumed``); None for items/s."""
        if not self.share:
            return None
        return {side: t.average_item_bytes if t else 1.0 for side, t in by_side.items()}

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.share else f"{self.value:g}"


def read_items(table: Definition, units: float) -> float:
    """Items per second the table's read capacity allows at ``units`` per 4 KB."""
    if table.capacity is None:
        return ON_DEMAND_ITEMS_PER_SECOND
    size = max(table.average_item_bytes, 1.0)
    return table.capacity.read / (units * math.ceil(size / 4096))


def write_items(table: Definition) -> float:
    if table.capacity is None:
        return ON_DEMAND_ITEMS_PER_SECOND
    size = max(table.average_item_bytes, 1.0)
    return table.capacity.write / math.ceil(size / 1024)
