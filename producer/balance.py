"""Fair shares of a stream's shards among live producers (pure: decided from a lease snapshot).

A producer's share is ``ceil(ready shards / live producers)``. Below it, a producer first takes
leases that are free, expired or promised to it; if that is not enough, it asks the producer
holding the most for shards, but only while that one holds at least two more than it will
(so two producers never pass a shard back and forth), and never more than halves the gap.
A producer above its share keeps its shards until someone asks.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field

from producer.leases import LeaseRecord, Snapshot


@dataclass(frozen=True)
class Moves:
    take: list[str] = field(default_factory=list)
    ask: list[tuple[str, str, int]] = field(default_factory=list)  # shard, owner, token


def share(ready: int, producers: int) -> int:
    return math.ceil(ready / max(1, producers))


def plan(me: str, ready: list[str], snap: Snapshot, rng: random.Random | None = None) -> Moves:
    """What ``me`` should take and ask for, given the ready shards and the leases."""
    rng = rng or random.Random()
    now = snap.now_ms
    leases = {s: snap.leases.get(s) for s in ready}
    owners = Counter(r.owner for r in leases.values() if r is not None and r.held(now))
    target = share(len(ready), len(set(snap.producers) | {me}))
    promised = [s for s, r in leases.items() if r is not None and r.reserved == me]
    free = [
        s for s, r in leases.items() if r is None or (r.free_for(me, now) and s not in promised)
    ]
    rng.shuffle(free)  # producers starting together do not all try the same shards first
    asked = sum(1 for r in leases.values() if r is not None and r.wanted == me and r.held(now))
    have = owners[me] + asked
    take = [s for s in promised if not _mine(leases[s], me, now)]
    take += free[: max(0, target - have - len(take))]
    have += len(take)
    return Moves(take=take, ask=_asks(me, leases, owners, target, have, now, rng))


def _mine(record: LeaseRecord | None, me: str, now: int) -> bool:
    return record is not None and record.owner == me and record.held(now)


def _asks(
    me: str,
    leases: dict[str, LeaseRecord | None],
    owners: Counter[str],
    target: int,
    have: int,
    now: int,
    rng: random.Random,
) -> list[tuple[str, str, int]]:
    others = [(n, o) for o, n in owners.items() if o != me]
    if have >= target or not others:
        return []
    most, busiest = max(others)
    if most - have < 2:
        return []
    count = min(target - have, (most - have) // 2)
    theirs = [
        (s, r.owner, r.token)
        for s, r in leases.items()
        if r is not None and r.owner == busiest and r.held(now) and not r.wanted
    ]
    rng.shuffle(theirs)
    return theirs[:count]
