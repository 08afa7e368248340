"""Counters and lag samples the workers keep in Redis, per target table.

``replicator status`` (and the metrics exporter) read them; tests and benchmarks use them to
count primary reads and to measure how far behind the replica is.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import redis

from tasks.config import settings

LAG_SAMPLES = 10_000


def _name(target: str) -> str:
    return settings().key("stats", target)


def _lag_name(target: str) -> str:
    return settings().key("lag", target)


def add(pipe: redis.client.Pipeline, target: str, counts: Mapping[str, int]) -> None:
    """Queue counter increments on a pipeline (the caller executes it)."""
    for field, n in counts.items():
        if n:
            pipe.hincrby(_name(target), field, n)


def add_lag(pipe: redis.client.Pipeline, target: str, created: Sequence[float]) -> None:
    """Queue lag samples (milliseconds from change creation to now) on a pipeline."""
    if not created:
        return
    now = time.time()
    samples = [round((now - c) * 1000) for c in created if c > 0]
    if samples:
        pipe.lpush(_lag_name(target), *samples)
        pipe.ltrim(_lag_name(target), 0, LAG_SAMPLES - 1)
        pipe.hset(_name(target), "last_applied_at", now)


def read(client: redis.Redis, target: str) -> dict[str, float]:
    return {text(k): float(v) for k, v in client.hgetall(_name(target)).items()}


def text(value: bytes | str) -> str:
    """A Redis reply as text (replies are bytes unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else value


def lag_samples(client: redis.Redis, target: str) -> list[int]:
    return [int(v) for v in client.lrange(_lag_name(target), 0, -1)]


def reset(client: redis.Redis, target: str) -> None:
    client.delete(_name(target), _lag_name(target))
