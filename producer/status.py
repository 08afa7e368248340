"""What the producers of a stream are doing, kept in Redis for ``replicator status``.

Each producer registers its checkpoint name (the *consumer*: stream, targets, retention, lease
time) and publishes, every lease tick, the state of each shard it reads. ``read`` joins that
with the leases: who holds how many shards, each shard's iterator age, lag and how long its
checkpoint has not advanced, and the warnings an operator must act on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from producer.leases import LeaseTable
from producer.stats import ShardStatus
from tasks.coord.redis_conn import text
from tasks.core.config import settings
from tasks.core.times import age_text

# Warn when the oldest unread record of a shard is this far into the stream's retention: past
# the retention its changes are gone, and only diff-tables --repair brings the replica back.
RETENTION_WARNING = 0.5
# Warn when a shard's checkpoint has not advanced for this long although records wait.
STALLED_WARNING = 60.0


def _consumers_key() -> str:
    return settings().key("consumers")


def _state_key(consumer: str) -> str:
    return settings().key("shard-state", consumer)


def register(
    client: redis.Redis,
    consumer: str,
    stream: str,
    targets: Sequence[str],
    retention: float,
    lease_seconds: float,
    pipeline: str = "",
    transforms: Mapping[str, str] | None = None,
) -> None:
    """``transforms``: the identity of the transform each target's messages carry (targets
    without one are left out)."""
    about = {
        "pipeline": pipeline,
        "stream": stream,
        "targets": list(targets),
        "transforms": dict(transforms or {}),
        "retention": retention,
        "lease_seconds": lease_seconds,
    }
    client.hset(_consumers_key(), consumer, json.dumps(about, sort_keys=True))


def publish(
    client: redis.Redis, consumer: str, owner: str, shards: Mapping[str, ShardStatus]
) -> None:
    now = time.time()
    rows = {
        shard: json.dumps(
            {
                "owner": owner,
                "lag": round(s.lag, 3),
                "iterator_age": round(s.iterator_age, 3),
                "progress_at": s.progress_at,
                "at": now,
            }
        )
        for shard, s in list(shards.items())
    }
    if rows:
        client.hset(_state_key(consumer), mapping=rows)  # type: ignore[arg-type]


def unregister(client: redis.Redis, consumer: str) -> None:
    """Drop a consumer that is done for good (a finished migration's tail): ``read`` no longer
    shows it, nor warns that no producer runs for it. Registering again brings it back."""
    pipe = client.pipeline()
    pipe.hdel(_consumers_key(), consumer)
    pipe.delete(_state_key(consumer))
    pipe.execute()


def forget(client: redis.Redis, consumer: str, shard_ids: list[str]) -> None:
    """Drop the state of shards the stream no longer lists."""
    if shard_ids:
        client.hdel(_state_key(consumer), *shard_ids)


def retention_used(iterator_age: float, retention: float) -> float:
    return iterator_age / retention if retention > 0 else 0.0


def retention_warning(stream: str, shard: str, iterator_age: float, retention: float) -> str:
    return (
        f"stream {stream} shard {shard}: the oldest unread record is {age_text(iterator_age)} "
        f"old and the stream keeps records {age_text(retention)}: after that its changes are "
        "lost and only diff-tables --repair brings the replica back"
    )


@dataclass
class StreamStatus:
    name: str
    stream: str
    retention: float
    pipeline: str = ""
    targets: list[str] = field(default_factory=list)
    transforms: dict[str, str] = field(default_factory=dict)  # target -> transform identity
    producers: dict[str, int] = field(default_factory=dict)  # live producer -> leases held
    shards: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        ages = [s["iterator_age_s"] for s in self.shards.values()]
        return {
            "name": self.name,
            "stream": self.stream,
            "transforms": self.transforms,
            "producers": self.producers,
            "leases": sum(self.producers.values()),
            "max_iterator_age_s": max(ages, default=0.0),
            "shards": self.shards,
        }


def read(client: redis.Redis, target: str | None = None) -> list[StreamStatus]:
    """The producers of every consumer that feeds ``target`` (every consumer when None)."""
    found = []
    for name, raw in sorted(client.hgetall(_consumers_key()).items()):
        about = json.loads(raw)
        if target is None or target in about.get("targets", []):
            found.append(_stream_status(client, text(name), about))
    return found


def _stream_status(client: redis.Redis, name: str, about: dict[str, Any]) -> StreamStatus:
    table = LeaseTable(client, name, "", float(about.get("lease_seconds") or 10.0))
    snap = table.snapshot()
    now = time.time()
    result = StreamStatus(
        name,
        str(about.get("stream")),
        float(about.get("retention") or 0),
        str(about.get("pipeline") or ""),
        list(about.get("targets", [])),
        dict(about.get("transforms") or {}),
    )
    result.producers = {p: 0 for p in snap.producers}
    states = {text(k): json.loads(v) for k, v in client.hgetall(_state_key(name)).items()}
    for shard, lease in sorted(snap.leases.items()):
        if not lease.held(snap.now_ms):
            continue
        result.producers[lease.owner] = result.producers.get(lease.owner, 0) + 1
        state = states.get(shard, {})
        mine = state.get("owner") == lease.owner
        result.shards[shard] = {
            "owner": lease.owner,
            "iterator_age_s": float(state.get("iterator_age", 0.0)) if mine else 0.0,
            "lag_s": float(state.get("lag", 0.0)) if mine else 0.0,
            "stalled_s": round(max(0.0, now - float(state["progress_at"])), 3) if mine else 0.0,
        }
    result.warnings = _warnings(result)
    return result


def _warnings(status: StreamStatus) -> list[str]:
    found = []
    if not status.producers:
        found.append(
            f"stream {status.stream}: no producer named {status.name} is running; its records "
            f"are kept {age_text(status.retention)}, then lost"
        )
    for shard, row in status.shards.items():
        if retention_used(row["iterator_age_s"], status.retention) >= RETENTION_WARNING:
            found.append(
                retention_warning(status.stream, shard, row["iterator_age_s"], status.retention)
            )
        if row["stalled_s"] >= STALLED_WARNING:
            found.append(
                f"stream {status.stream} shard {shard}: the checkpoint has not advanced for "
                f"{age_text(row['stalled_s'])} (producer {row['owner']})"
            )
    return found
