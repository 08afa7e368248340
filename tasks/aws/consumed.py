"""What a bulk job's calls cost the table: the capacity units DynamoDB says they consumed.

A table handle may carry a ``Meter`` (``metered(table)``): the reads and writes made through it
ask for ``ReturnConsumedCapacity`` and add the units to the meter, by side and by price class:

- ``EVENTUAL``: eventually consistent reads (a scan page): 0.5 read units per 4 KB;
- ``STRONG``: strongly consistent reads (a point read before a write): 1 read unit per 4 KB;
- ``WRITE``: 1 write unit per 1 KB.

A job charges its rate limiter with what ``item_equivalents`` makes of the units: as many items as
those units would have paid for at the item size the rate was planned with. So a job asked for a
share of a table's capacity (``--rate 50%``) keeps to it whatever size its items really are (the
size DynamoDB's DescribeTable reports is refreshed only every six hours, and is 0 for a new table).
Live replication does not meter: it pays no response bytes for it.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from tasks.core.locations import Table

EVENTUAL, STRONG, WRITE = "eventual", "strong", "write"

UNITS_PER_ITEM = {EVENTUAL: (0.5, 4096), STRONG: (1.0, 4096), WRITE: (1.0, 1024)}
"""Price class -> (units, per this many bytes of item, rounded up)."""


class Meter:
    """Units consumed through metered table handles, by (side, price class); thread-safe (a
    job's batches go out on several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._units: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.reported = False  # the endpoint reports consumed capacity at all

    def add(self, side: str, price: str, units: float) -> None:
        if units:
            with self._lock:
                self._units[(side, price)] += units
                self.reported = True

    def drain(self) -> dict[tuple[str, str], float]:
        """The units added since the last drain."""
        with self._lock:
            taken = dict(self._units)
            self._units.clear()
        return taken

    def cost(
        self, items: int, item_bytes: Mapping[str, float] | None, *, one_op: bool = False
    ) -> float:
        """What ``items`` just read or written cost a rate limiter: ``item_equivalents`` of the
        units added since the last drain (the items, while the endpoint reports none)."""
        if not self.reported:
            return float(items)
        return item_equivalents(items, self.drain(), item_bytes, one_op=one_op)


def metered(table: Table, meter: Meter) -> Table:
    """``table``, with its calls metered into ``meter`` (equal to ``table`` for every cache)."""
    return dataclasses.replace(table, meter=meter)


def units_of(response: Mapping[str, Any]) -> float:
    """The units a response reports (one entry for a Scan, one per table for a batch)."""
    consumed = response.get("ConsumedCapacity")
    if isinstance(consumed, Mapping):
        consumed = [consumed]
    return sum(float(c.get("CapacityUnits") or 0) for c in consumed or ())


def item_units(price: str, item_bytes: float) -> float:
    """What one item of ``item_bytes`` costs at ``price``."""
    units, per = UNITS_PER_ITEM[price]
    return units * math.ceil(max(item_bytes, 1.0) / per)


def item_equivalents(
    items: int,
    consumed: Mapping[tuple[str, str], float],
    item_bytes: Mapping[str, float] | None,
    *,
    one_op: bool = False,
) -> float:
    """What a batch of ``items`` costs a job's rate limiter.

    Without planned sizes (``--rate`` in items per second): the items. Otherwise, per side, the
    units consumed over what one item of the planned size costs at that price (the dearest price
    class of the side: a scan page and the point reads of its items are one item's reads). The
    sides add up, as each side's reads are charged apart (a verify pass reads both tables);
    ``one_op``: one charge pays for an item's reads on one side and its write on the other (a
    backfill), so the dearest side counts, each table keeping to its share of its capacity.
    """
    if not item_bytes:
        return float(items)
    per_side: dict[str, float] = {}
    for (side, price), units in consumed.items():
        ratio = units / item_units(price, item_bytes.get(side, 1.0))
        per_side[side] = max(per_side.get(side, 0.0), ratio)
    if not per_side:
        return 0.0  # already paid at an earlier charge
    return max(per_side.values()) if one_op else sum(per_side.values())
