"""Counters and lag samples the workers keep in Redis, per target table.

``replicator status`` (and the metrics exporter) read them; tests and benchmarks use them to
count primary reads and to measure how far behind the replica is.

Besides the per-target hash: DynamoDB throttling per table and side (noted in process memory by
``tasks.aws.dynamo``, moved to Redis by ``flush_throttles`` after each task), the capacity units
bulk jobs consumed and the calls refused for a missing permission (``note_consumed``,
``note_access_denied``, flushed with the throttling), and task retries per task
name (``add_task_retry``: a task sent again after a transient failure, ``tasks.resend``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import redis

from tasks.coord.redis_conn import text
from tasks.core.config import settings
from tasks.core.locations import Table

LAG_SAMPLES = 10_000


def _name(target: str) -> str:
    return settings().key("stats", target)


def _lag_name(target: str) -> str:
    return settings().key("lag", target)


@dataclass(frozen=True)
class Names:
    """The Redis keys of a target's numbers: counters, lag samples, the set of targets."""

    counters: str
    lag: str
    targets: str


def names(target: str) -> Names:
    return Names(_name(target), _lag_name(target), settings().key("targets"))


# What ``add`` and ``add_lag`` do, as a Lua function for scripts that record a round's numbers in
# the round trip they make anyway (``tasks.coord.guard``): record(counters, lag, targets,
# target, counts (a table of field -> n), now (text, epoch seconds), samples (ms)).
RECORD_LUA = f"""
local function record(counters, lag, targets, target, counts, now, samples)
  local any = false
  for field, n in pairs(counts) do
    if n ~= 0 then
      redis.call('HINCRBY', counters, field, n)
      any = true
    end
  end
  if any then redis.call('SADD', targets, target) end
  if #samples > 0 then
    for first = 1, #samples, 1000 do
      redis.call('LPUSH', lag, unpack(samples, first, math.min(#samples, first + 999)))
    end
    redis.call('LTRIM', lag, 0, {LAG_SAMPLES - 1})
    redis.call('HSET', counters, 'last_applied_at', now)
  end
end
"""


def add(pipe: redis.client.Pipeline, target: str, counts: Mapping[str, int]) -> None:
    """Queue counter increments on a pipeline (the caller executes it)."""
    if any(counts.values()):
        pipe.sadd(settings().key("targets"), target)
    for field, n in counts.items():
        if n:
            pipe.hincrby(_name(target), field, n)


def targets(client: redis.Redis) -> list[str]:
    """Every target that has counters (for the metrics)."""
    return sorted(text(t) for t in client.smembers(settings().key("targets")))


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


def quantile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of sorted samples (0 when there are none)."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0


def lag_samples(client: redis.Redis, target: str) -> list[int]:
    return [int(v) for v in client.lrange(_lag_name(target), 0, -1)]


def lag_ms(client: redis.Redis, target: str) -> dict[str, float]:
    """The replication lag as ``replicator status`` and ``replicator migrate`` show it:
    ``lag_ms_p50`` and ``lag_ms_p99`` of the last ``LAG_SAMPLES`` changes applied to
    ``target``, each from its creation on the primary to its write; empty before the first."""
    lags = sorted(lag_samples(client, target))
    if not lags:
        return {}
    return {"lag_ms_p50": quantile(lags, 0.5), "lag_ms_p99": quantile(lags, 0.99)}


def reset(client: redis.Redis, target: str) -> None:
    client.delete(_name(target), _lag_name(target))
    client.srem(settings().key("targets"), target)


# -- throttling and task retries ----------------------------------------------------------------

_throttle_lock = threading.Lock()
_pending_throttles: Counter[tuple[str, str]] = Counter()
_pending_units: defaultdict[tuple[str, str], float] = defaultdict(float)
_pending_denied: Counter[str] = Counter()


def throttles_name() -> str:
    return settings().key("throttles")


def throttle_field(table: Table) -> str:
    """The field of ``throttles_name()`` that counts a table's throttling (as the client's
    watcher in ``tasks.aws.dynamo`` names it)."""
    return f"{table.side}|{table.location}"


def note_throttle(table: str, side: str, n: int = 1) -> None:
    """Count throttling seen by this process (no I/O; ``flush_throttles`` stores it)."""
    with _throttle_lock:
        _pending_throttles[(table, side)] += n


def note_access_denied(action: str) -> None:
    """Count a call refused for a missing permission (no I/O; ``flush_throttles`` stores it)."""
    with _throttle_lock:
        _pending_denied[action] += 1


def note_consumed(table: str, side: str, units: float) -> None:
    """Count capacity units a bulk job's call consumed (no I/O; ``flush_throttles`` stores
    them with the throttling)."""
    if units:
        with _throttle_lock:
            _pending_units[(table, side)] += units


def flush_throttles(client: redis.Redis) -> None:
    """Add what ``note_throttle`` and ``note_consumed`` counted to Redis (kept for the next
    flush if Redis fails)."""
    with _throttle_lock:
        taken, units, denied = dict(_pending_throttles), dict(_pending_units), dict(_pending_denied)
        _pending_throttles.clear()
        _pending_units.clear()
        _pending_denied.clear()
    if not taken and not units and not denied:
        return
    try:
        pipe = client.pipeline(transaction=False)
        for (table, side), n in taken.items():
            pipe.hincrby(throttles_name(), f"{side}|{table}", n)
        for (table, side), u in units.items():
            pipe.hincrbyfloat(settings().key("consumed"), f"{side}|{table}", u)
        for action, n in denied.items():
            pipe.hincrby(settings().key("access-denied"), action, n)
        pipe.execute()
    except redis.RedisError:
        with _throttle_lock:
            _pending_throttles.update(taken)
            _pending_denied.update(denied)
            for at, u in units.items():
                _pending_units[at] += u
        raise


def access_denied(client: redis.Redis) -> dict[str, float]:
    """IAM action -> calls refused for want of it."""
    raw = client.hgetall(settings().key("access-denied"))
    return {text(k): float(v) for k, v in raw.items()}


def consumed_units(client: redis.Redis) -> dict[tuple[str, str], float]:
    """(table, side) -> capacity units bulk jobs consumed."""
    out: dict[tuple[str, str], float] = {}
    for field, n in client.hgetall(settings().key("consumed")).items():
        side, _, table = text(field).partition("|")
        out[(table, side)] = float(n)
    return out


def throttles(client: redis.Redis) -> dict[tuple[str, str], float]:
    """(table, side) -> throttling events."""
    out: dict[tuple[str, str], float] = {}
    for field, n in client.hgetall(throttles_name()).items():
        side, _, table = text(field).partition("|")
        out[(table, side)] = float(n)
    return out


def add_task_retry(client: redis.Redis, task: str) -> None:
    client.hincrby(settings().key("task-retries"), task, 1)


def task_retries(client: redis.Redis) -> dict[str, float]:
    raw = client.hgetall(settings().key("task-retries"))
    return {text(k): float(v) for k, v in raw.items()}
