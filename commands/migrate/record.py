"""A migration's record in Redis: its phase, what each phase found, and how long it took.

One JSON document per migration name (``NS:migration:NAME``) and an index of names
(``NS:migrations``). Rerunning ``replicator migrate`` with the same ``--name`` loads the record
and continues at the first phase not marked done; ``replicator migrate stop NAME`` sets ``stop``,
which the running command notices within a second.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from tasks.core.config import settings

PHASES = ("preflight", "create", "capture", "backfill", "catch-up", "verify", "ready")


@dataclass
class Migration:
    name: str
    source: str
    target: str
    phase: str = "preflight"
    done: list[str] = field(default_factory=list)
    started: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    captured_at: float | None = None
    backfill_job: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    lag_seconds: float | None = None
    state: str = "running"  # running, ready, stopped, failed
    reason: str = ""
    updated: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Migration:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


class MigrationStore:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._index = settings().key("migrations")

    def _name(self, name: str) -> str:
        return settings().key("migration", name)

    def _stop_name(self, name: str) -> str:
        return settings().key("migration", name, "stop")

    def load(self, name: str) -> Migration | None:
        raw = self._redis.get(self._name(name))
        return Migration.from_json(raw) if raw else None

    def save(self, migration: Migration) -> None:
        migration.updated = time.time()
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._name(migration.name), migration.to_json())
        pipe.zadd(self._index, {migration.name: migration.updated})
        pipe.execute()

    def names(self) -> list[str]:
        return [
            n.decode() if isinstance(n, bytes) else str(n)
            for n in self._redis.zrange(self._index, 0, -1)
        ]

    def request_stop(self, name: str) -> None:
        self._redis.set(self._stop_name(name), "1")

    def stop_requested(self, name: str) -> bool:
        return bool(self._redis.exists(self._stop_name(name)))

    def clear_stop(self, name: str) -> None:
        self._redis.delete(self._stop_name(name))
