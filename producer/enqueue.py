"""Turn a page of change records into Celery messages: distinct keys, coalesced, batched.

Per target (the replica, the S3 backup): keys already waiting in the queue are skipped
(``tasks.coord.pending``); the others go out in messages of up to ``keys_per_message`` keys, each
with the creation time of the oldest change it covers (for the lag) and, for the backup, of the
newest (the time its backed-up version records). If sending fails half-way,
the run's pending marks can no longer be trusted, so the enqueuer starts a new session.
Shard readers call ``enqueue`` from several threads at once (Celery's producer pool and the Redis
client are thread-safe); the counters are kept under a lock.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from producer.records import ChangeRecord
from tasks import names
from tasks.coord import pending
from tasks.core.iters import batched
from tasks.core.keys import Key
from tasks.core.locations import S3Location, TableLocation
from tasks.core.transform import TransformSpec
from tasks.messages import KeysMessage


@dataclass(frozen=True)
class Target:
    task: str  # tasks.names.REPLICATE or tasks.names.BACKUP_RECORD
    arg: str  # the replica location (its spec) or the S3 URL, as the task receives it
    name: str  # the target's identity in Redis (pending marks), as the task's sink names it
    transform: TransformSpec = field(default_factory=TransformSpec)  # a replica's messages carry it

    @classmethod
    def replica(cls, location: TableLocation, transform: TransformSpec | None = None) -> Target:
        return cls(names.REPLICATE, location.spec, str(location), transform or TransformSpec())

    @classmethod
    def backup(cls, location: S3Location) -> Target:
        return cls(names.BACKUP_RECORD, str(location), str(location))


@dataclass
class Enqueuer:
    app: Any
    redis: redis.Redis
    primary: str
    targets: Sequence[Target]
    keys_per_message: int = 100
    session: str = field(default_factory=lambda: uuid.uuid4().hex)
    sent_keys: int = 0
    coalesced_keys: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def enqueue(self, records: Sequence[ChangeRecord]) -> tuple[int, int]:
        """Send every distinct key of ``records`` to every target: (keys sent, keys coalesced).

        Raises if sending failed (the caller sends the page again)."""
        oldest: dict[Key, float] = {}
        newest: dict[Key, float] = {}
        for record in records:
            oldest[record.key] = min(oldest.get(record.key, record.created), record.created)
            newest[record.key] = max(newest.get(record.key, record.created), record.created)
        keys = list(oldest)
        sent = coalesced = 0
        if not keys:
            return sent, coalesced
        session = self.session
        try:
            for target in self.targets:
                fresh = pending.mark(self.redis, target.name, session, [k.id for k in keys])
                todo = [k for k, new in zip(keys, fresh, strict=True) if new]
                coalesced += len(keys) - len(todo)
                sent += self._send(target, todo, (oldest, newest), session)
        except Exception:
            self.session = uuid.uuid4().hex
            raise
        finally:
            with self._lock:
                self.sent_keys += sent
                self.coalesced_keys += coalesced
        return sent, coalesced

    def _send(
        self,
        target: Target,
        todo: list[Key],
        times: tuple[dict[Key, float], dict[Key, float]],
        session: str,
    ) -> int:
        sent = 0
        oldest, newest = times
        backup = target.task == names.BACKUP_RECORD
        transform = None if target.transform.empty else target.transform.to_params()
        for chunk in batched(todo, self.keys_per_message):
            KeysMessage(
                target.task,
                self.primary,
                target.arg,
                [k.wire for k in chunk],
                created=[oldest[k] for k in chunk],
                session=session,
                changed=[newest[k] for k in chunk] if backup else None,
                transform=transform,
            ).send(self.app)
            sent += len(chunk)
        return sent
