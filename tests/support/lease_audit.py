"""Check what several producers did to one stream: who read which shard when, against the leases.

The reads come from a ``FaultProxy`` in front of the stream service (each producer runs with its
own ``AWS_SDK_UA_APP_ID``, which botocore puts in its User-Agent); the leases' history comes from
Redis (``producer.leases``: every change of owner, with Redis's time). Both clocks are this
machine's.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from dataclasses import dataclass

from tests.support.faultproxy import CallRecord


@dataclass(frozen=True)
class Read:
    shard: str
    app: str
    started: float
    ended: float


@dataclass(frozen=True)
class Tenure:
    """One producer's hold on a shard, from taking the lease to its end."""

    owner: str
    start: float  # seconds
    end: float  # release, finish, or the expiry of the last renewal when taken over


def kinesis_shard(iterator: str) -> str:
    """The shard of one of moto's Kinesis shard iterators (base64 of 'stream:shard:sequence')."""
    return base64.decodebytes(iterator.encode()).decode().split(":")[1]


def kinesis_reads(calls: list[CallRecord]) -> list[Read]:
    """The producers' reads of the shards (the permission check's own read, one record from the
    newest position before any lease is taken, is not among the proxy's calls of the work)."""
    return [
        Read(kinesis_shard(c.document["ShardIterator"]), c.app or "", c.started, c.ended)
        for c in calls
        if c.operation == "GetRecords" and c.document and c.status == 200
    ]


def tenures(history: list[dict[str, str]]) -> dict[str, list[Tenure]]:
    """Per shard, who held it when, from the leases' history."""
    open_: dict[str, tuple[str, float]] = {}
    found: dict[str, list[Tenure]] = defaultdict(list)
    for event in history:
        shard, at = event["shard"], float(event["at"]) / 1000
        if shard in open_:
            owner, start = open_.pop(shard)
            end = at
            if event["event"] == "takeover":
                end = min(at, int(event["previous_expires"]) / 1000)
            found[shard].append(Tenure(owner, start, end))
        if event["event"] in ("acquire", "takeover"):
            open_[shard] = (event["owner"], at)
    for shard, (owner, start) in open_.items():
        found[shard].append(Tenure(owner, start, float("inf")))
    return found


def reads_outside_tenure(
    reads: list[Read], history: list[dict[str, str]], owner_of_app: dict[str, str]
) -> list[Read]:
    """The reads made by a producer that did not hold the shard's lease for the whole read."""
    held = tenures(history)
    return [
        read
        for read in reads
        if not any(
            t.owner == owner_of_app.get(read.app)
            and t.start <= read.started
            and read.ended <= t.end
            for t in held.get(read.shard, [])
        )
    ]
