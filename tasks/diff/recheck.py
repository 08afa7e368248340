"""Re-reading keys a scan found unequal: strongly consistent reads of both sides, now.

A scan compares two tables at slightly different moments, so a key changed while it ran (its
change still on the way to the replica) shows as a discrepancy. ``compare`` reads the keys again
from both sides, consistently, and judges them as the scan did: ``shape(primary item)`` against
the replica item, ``ignore`` left out. ``settle`` re-reads until every key reads equal or the
time is up (a migration's verify); the continuous verifier schedules its own re-reads
(``tasks.verify.confirm``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from tasks.aws import dynamo
from tasks.core.keys import Key
from tasks.core.locations import Table
from tasks.core.typed_json import Item, items_equal

Shape = Callable[[Item], Item | None]


def unchanged(item: Item) -> Item | None:
    """The identity shape: no transform."""
    return item


@dataclass(frozen=True)
class Reread:
    """One key read again: both sides' items (None: absent), or unreadable (throttled)."""

    key: Key
    primary: Item | None
    replica: Item | None
    equal: bool
    readable: bool = True
    shaped: Item | None = None  # shape(primary): what the replica should hold


def compare(
    primary: Table,
    replica: Table,
    keys: Sequence[Key],
    shape: Shape = unchanged,
    ignore: Iterable[str] = (),
) -> list[Reread]:
    """Each key read consistently from both sides and judged (in ``keys``' order)."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return []
    skip = tuple(ignore)
    left, right = dynamo.batch_get(primary, wanted), dynamo.batch_get(replica, wanted)
    found = []
    for key in wanted:
        if key.canonical in left.failed or key.canonical in right.failed:
            found.append(Reread(key, None, None, False, readable=False))
            continue
        source = left.found.get(key.canonical)
        shaped = None if source is None else shape(source)
        target = right.found.get(key.canonical)
        found.append(Reread(key, source, target, items_equal(shaped, target, skip), True, shaped))
    return found


def settle(
    primary: Table,
    replica: Table,
    keys: Sequence[Key],
    within: float,
    shape: Shape = unchanged,
    interval: float = 1.0,
) -> list[str]:
    """The keys (canonical JSON) still unequal (or unreadable) after re-reading them every
    ``interval`` seconds for up to ``within`` seconds."""
    waiting = list(dict.fromkeys(keys))
    deadline = time.monotonic() + within
    while waiting:
        waiting = [r.key for r in compare(primary, replica, waiting, shape) if not r.equal]
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(interval)
    return [k.canonical for k in waiting]
