"""Pure logic of a segment diff: pair the two sides' scanned keys, and judge confirmed reads.

Both tables' segment I are scanned page by page. A key seen on both sides is a *pair*: equal
scan images (compared by ``item_digest``) need no further read; unequal ones are candidates for
confirmation. A key seen on one side only *waits* for its partner; waiting keys are bounded
(``limit`` per side: the oldest are resolved early) and resolved at the end of the segment with
point reads of the other side, because a table may put a key in another segment than its peer.

Ownership makes each discrepancy counted once across segments, whatever the two tables do with
segments: a key present in the primary belongs to the segment whose *primary* scan returned it
(missing, different); a key only in the replica belongs to the segment whose *replica* scan
returned it (extraneous). A segment never reports a key it does not own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tasks.core.typed_json import Item, item_digest, items_equal

PRIMARY, REPLICA = "primary", "replica"
SIDES = (PRIMARY, REPLICA)
MISSING, EXTRANEOUS, DIFFERENT = "missing", "extraneous", "different"
KINDS = (MISSING, EXTRANEOUS, DIFFERENT)
# What each origin of a candidate may report (see "ownership" above).
PAIR, PRIMARY_ONLY, REPLICA_ONLY = "pair", "primary-only", "replica-only"
OWNS = {
    PAIR: frozenset(KINDS),
    PRIMARY_ONLY: frozenset({MISSING, DIFFERENT}),
    REPLICA_ONLY: frozenset({EXTRANEOUS}),
}


def discrepancies(counts: Mapping[str, int]) -> int:
    """How many discrepancies a segment's (or a job's) counters hold."""
    return sum(counts.get(kind, 0) for kind in KINDS)


def other(side: str) -> str:
    return REPLICA if side == PRIMARY else PRIMARY


@dataclass
class Offer:
    """What offering one page did: pairs found, and the pairs whose images differ."""

    pairs: int = 0
    differ: list[str] = field(default_factory=list)


Seen = Item | str  # a scanned item, or its digest once it waited past a page


@dataclass
class Matcher:
    """Keys (canonical JSON) seen on one side only so far, with their items or item digests.

    Items of the current pages are compared as they are (``==`` first, then DynamoDB's
    equality); keys still waiting after a step keep only their digest (``compact``), which is
    what the checkpoint stores.
    """

    limit: int = 10_000
    ignore: tuple[str, ...] = ()
    waiting: dict[str, dict[str, Seen]] = field(default_factory=lambda: {PRIMARY: {}, REPLICA: {}})

    def digest(self, seen: Seen) -> str:
        return seen if isinstance(seen, str) else item_digest(seen, self.ignore)

    def same(self, a: Seen, b: Seen) -> bool:
        """DynamoDB equality of two seen values (ignoring ``ignore``)."""
        if isinstance(a, str) or isinstance(b, str):
            return self.digest(a) == self.digest(b)
        return a == b or items_equal(a, b, self.ignore)

    def offer(self, side: str, entries: Iterable[tuple[str, Seen]]) -> Offer:
        """Add one side's scanned (key, item) pairs; pair them with the other side's."""
        mine, theirs = self.waiting[side], self.waiting[other(side)]
        result = Offer()
        for cid, seen in entries:
            partner = theirs.pop(cid, None)
            if partner is None:
                mine[cid] = seen
                continue
            result.pairs += 1
            if not self.same(partner, seen):
                result.differ.append(cid)
        return result

    def overflow(self, side: str) -> list[tuple[str, Seen]]:
        """Remove and return the oldest waiting keys beyond the limit."""
        return self.take(side, len(self.waiting[side]) - self.limit)

    def take(self, side: str, count: int | None = None) -> list[tuple[str, Seen]]:
        """Remove and return ``count`` oldest waiting keys of a side (all when None)."""
        waiting = self.waiting[side]
        n = len(waiting) if count is None else max(0, min(count, len(waiting)))
        taken = [(cid, waiting[cid]) for cid in list(waiting)[:n]]
        for cid, _ in taken:
            del waiting[cid]
        return taken

    def compact(self) -> None:
        """Keep only digests of the waiting keys (bounded memory, and what checkpoints hold)."""
        for keys in self.waiting.values():
            for cid, seen in keys.items():
                if not isinstance(seen, str):
                    keys[cid] = self.digest(seen)

    def to_json(self) -> dict[str, list[list[str]]]:
        return {
            side: [[c, self.digest(v)] for c, v in keys.items()]
            for side, keys in self.waiting.items()
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any] | None, limit: int, ignore: tuple[str, ...] = ()
    ) -> Matcher:
        matcher = cls(limit, ignore)
        for side in SIDES:
            matcher.waiting[side] = {c: d for c, d in (data or {}).get(side, [])}
        return matcher


def judge(
    origin: str,
    primary: Mapping[str, Any] | None,
    replica: Mapping[str, Any] | None,
    ignore: Iterable[str] = (),
) -> str | None:
    """The discrepancy consistent reads of both sides show, if this segment owns it."""
    if primary is None and replica is None:
        kind = None
    elif replica is None:
        kind = MISSING
    elif primary is None:
        kind = EXTRANEOUS
    else:
        kind = None if items_equal(primary, replica, ignore) else DIFFERENT
    return kind if kind in OWNS[origin] else None


def differing_attributes(
    primary: Mapping[str, Any], replica: Mapping[str, Any], ignore: Iterable[str] = ()
) -> list[str]:
    """Names of the attributes whose values differ (or that one side lacks)."""
    skip = set(ignore)
    names = (set(primary) | set(replica)) - skip
    return sorted(
        n
        for n in names
        if not items_equal(
            {n: primary[n]} if n in primary else {}, {n: replica[n]} if n in replica else {}
        )
    )
