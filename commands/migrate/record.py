"""A migration's record in Redis: its phase, what each phase found, and how long it took.

One JSON document per migration name (``NS:migration:NAME``), an index of names
(``NS:migrations``), the running command's heartbeat (``NS:migration:NAME:beat``, the time of
its last beat) and a stop request (``NS:migration:NAME:stop``). Rerunning ``replicator
migrate`` with the same ``--name`` loads the record and continues at the first phase not marked
done; ``replicator migrate stop NAME`` sets ``stop``, which the running command notices within a
second.

The stored ``state`` is what the command last said: ``running``, ``ready`` (and following the
stream), ``refused`` (preflight), ``failed``, ``stopped``. A command that died says nothing:
``shown_state`` reads a ``running`` or ``ready`` record whose heartbeat is older than
``INTERRUPTED_AFTER_SECONDS`` as ``interrupted``.

``seconds`` is the time the command spent in each phase, over every attempt; the attempt in
hand started at ``started[phase]``. An attempt cut short by a dead command counts until its last
heartbeat, not the time the command was dead.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import redis

from tasks.core.config import settings

PHASES = ("preflight", "create", "capture", "backfill", "catch-up", "verify", "ready")
HEARTBEAT_SECONDS = 1.0
"""How often a running command refreshes its heartbeat."""
INTERRUPTED_AFTER_SECONDS = 30.0
"""A running migration whose heartbeat is this old shows as ``interrupted`` (its command
died): well within a minute of the death, and far above a slow Redis round trip."""
LIVE_STATES = ("running", "ready")
"""Stored states that mean a command is (or was, if it died) working on the migration."""


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
    export_arn: str | None = None  # --backfill export: the export asked for at capture
    counts: dict[str, int] = field(default_factory=dict)
    behind_seconds: float | None = None  # how far behind the stream's tip the tail reads
    state: str = "running"  # running, ready, refused, failed, stopped (see shown_state)
    reason: str = ""
    updated: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Migration:
        data: dict[str, Any] = json.loads(raw)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def begin(self, phase: str, now: float) -> None:
        self.phase, self.state, self.reason = phase, "running", ""
        self.started[phase] = now

    def end(self, phase: str, now: float) -> None:
        if phase not in self.done:
            self.done.append(phase)
        self.cut(now)

    def cut(self, until: float) -> None:
        """The attempts in hand end at ``until``: their time is added to their phases."""
        for phase, since in list(self.started.items()):
            spent = self.seconds.get(phase, 0.0) + max(0.0, until - since)
            self.seconds[phase] = round(spent, 3)
            del self.started[phase]


def shown_state(record: Migration, beat: float | None, now: float) -> str:
    """The state as it is: a live state whose command stopped beating is ``interrupted``."""
    alive = beat is not None and now - beat < INTERRUPTED_AFTER_SECONDS
    if record.state in LIVE_STATES and not alive:
        return "interrupted"
    return record.state


class MigrationStore:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._index = settings().key("migrations")

    def _name(self, name: str, *part: str) -> str:
        return settings().key("migration", name, *part)

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

    def forget(self, name: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._name(name), self._name(name, "beat"), self._name(name, "stop"))
        pipe.zrem(self._index, name)
        pipe.execute()

    # -- the running command's heartbeat --------------------------------------------------------

    def beat(self, name: str) -> None:
        self._redis.set(self._name(name, "beat"), repr(time.time()))

    def last_beat(self, name: str) -> float | None:
        raw = self._redis.get(self._name(name, "beat"))
        return float(raw) if raw else None

    def state(self, record: Migration) -> str:
        return shown_state(record, self.last_beat(record.name), time.time())

    # -- stop requests ----------------------------------------------------------------------------

    def request_stop(self, name: str) -> None:
        self._redis.set(self._name(name, "stop"), "1")

    def stop_requested(self, name: str) -> bool:
        return bool(self._redis.exists(self._name(name, "stop")))

    def clear_stop(self, name: str) -> None:
        self._redis.delete(self._name(name, "stop"))
