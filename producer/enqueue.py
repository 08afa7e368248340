"""Turn a page of change records into Celery messages: distinct keys, coalesced, batched.

Per target (the replica, the S3 backup): keys already waiting in the queue are skipped
(``tasks.pending``); the others go out in messages of up to ``keys_per_message`` keys, each
with the creation time of the oldest change it covers (for the lag). If sending fails half-way,
the run's pending marks can no longer be trusted, so the enqueuer starts a new session.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from producer.records import ChangeRecord
from tasks.coord import pending
from tasks.core.typed_json import canonical_json, key_id, to_wire


@dataclass(frozen=True)
class Target:
    task: str  # "replicate" or "backup-record"
    name: str  # the replica location or the S3 URL, as the task receives it


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

    def enqueue(self, records: Sequence[ChangeRecord]) -> None:
        """Send every distinct key of ``records`` to every target; raises if sending failed."""
        oldest: dict[str, float] = {}
        keys: dict[str, dict[str, Any]] = {}
        for record in records:
            cid = canonical_json(record.keys)
            keys.setdefault(cid, record.keys)
            oldest[cid] = min(oldest.get(cid, record.created), record.created)
        if not keys:
            return
        try:
            for target in self.targets:
                self._send(target, keys, oldest)
        except Exception:
            self.session = uuid.uuid4().hex
            raise

    def _send(
        self, target: Target, keys: dict[str, dict[str, Any]], oldest: dict[str, float]
    ) -> None:
        ids = list(keys)
        fresh = pending.mark(self.redis, target.name, self.session, [key_id(keys[c]) for c in ids])
        todo = [c for c, new in zip(ids, fresh, strict=True) if new]
        self.coalesced_keys += len(ids) - len(todo)
        for start in range(0, len(todo), self.keys_per_message):
            chunk = todo[start : start + self.keys_per_message]
            self.app.send_task(
                target.task,
                args=(self.primary, target.name, [to_wire(keys[c]) for c in chunk]),
                kwargs={"created": [oldest[c] for c in chunk], "session": self.session},
            )
            self.sent_keys += len(chunk)
