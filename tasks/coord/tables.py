"""The tables replication used lately, so that a new worker process gets ready for them.

A task notes its tables (``note``: once per process and table, one round trip); a pool process,
as it starts, builds the clients of the most recently used ones and reads their descriptions
(``recent``; ``tasks.replication.warmup``). One sorted set by time of last noting, at most
``KEEP`` entries, each a side and a location spec (``replica|us-east-1/orders``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import redis

from tasks.coord.redis_conn import text
from tasks.core import config
from tasks.core.config import settings
from tasks.core.errors import ReplicatorError
from tasks.core.locations import Table

KEEP = 16
_lock = threading.Lock()
_noted: set[Table] = set()
config.on_change(_noted.clear)


def _name() -> str:
    return settings().key("tables")


def note(client: redis.Redis, tables: Iterable[Table]) -> None:
    """Note tables this process uses (Redis hears of each once per process)."""
    with _lock:
        fresh = [t for t in tables if t not in _noted]
    if not fresh:
        return
    now = time.time()
    pipe = client.pipeline(transaction=False)
    pipe.zadd(_name(), {f"{t.side}|{t.location.spec}": now for t in fresh})
    pipe.zremrangebyrank(_name(), 0, -KEEP - 1)
    pipe.execute()
    with _lock:
        _noted.update(fresh)


def recent(client: redis.Redis, limit: int = KEEP) -> list[Table]:
    """The tables noted most recently first (entries that no longer parse are skipped)."""
    found = []
    members: list[bytes | str] = client.zrange(_name(), 0, limit - 1, desc=True)  # type: ignore[assignment]
    for member in members:
        side, _, spec = text(member).partition("|")
        try:
            found.append(settings().table(spec, side))
        except ReplicatorError:
            continue
    return found
