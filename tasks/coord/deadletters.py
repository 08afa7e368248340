"""Keys that still failed after bounded retries, kept in Redis where an operator sees them.

Each entry is one JSON object: the task kind, the source and target locations, the key (typed
wire JSON), the reason, the attempts made, when it was recorded, and what a replay must send
with the key (``carried``: the pipeline's transform). ``replicator dead-letters`` lists, replays
and purges them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from tasks.core.config import settings


@dataclass(frozen=True)
class DeadLetter:
    kind: str  # "replicate" or "backup"
    source: str
    target: str
    key: dict[str, Any]  # wire form
    reason: str
    attempts: int
    at: float
    carried: dict[str, Any] = field(default_factory=dict)  # the task's options (its transform)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> DeadLetter:
        return cls(**json.loads(raw))


def _name() -> str:
    return settings().key("deadletters")


def record(
    client: redis.Redis,
    kind: str,
    source: str,
    target: str,
    failures: Mapping[str, str],
    attempts: int,
    carried: Mapping[str, Any] | None = None,
) -> None:
    """Record failed keys (canonical JSON -> reason), with what a replay must carry."""
    if not failures:
        return
    now = time.time()
    options = dict(carried or {})
    entries = [
        DeadLetter(kind, source, target, json.loads(key), reason, attempts, now, options).to_json()
        for key, reason in failures.items()
    ]
    client.rpush(_name(), *entries)


def entries(client: redis.Redis) -> list[tuple[bytes | str, DeadLetter]]:
    return [(raw, DeadLetter.from_json(raw)) for raw in client.lrange(_name(), 0, -1)]


def count(client: redis.Redis) -> int:
    return int(client.llen(_name()))


def remove(client: redis.Redis, raws: Iterable[bytes | str]) -> int:
    pipe = client.pipeline(transaction=False)
    for raw in raws:
        pipe.lrem(_name(), 1, raw)  # type: ignore[arg-type]  # bytes are accepted
    return sum(int(n) for n in pipe.execute())


def purge(client: redis.Redis) -> int:
    pipe = client.pipeline()
    pipe.llen(_name())
    pipe.delete(_name())
    return int(pipe.execute()[0])
