"""A verifier's state in Redis: the lease, the pass in hand (its cursor), suspects, the report.

Redis layout (namespace NS, pipeline P)::

    NS:verify:P           hash    pass, job, order (JSON), sent, started, cursor, counts (JSON),
                                  last (JSON: the last full pass's summary line)
    NS:verify-lease:P     string  the verifier sweeping P (expires ``LEASE_SECONDS`` after its
                                  last renewal)
    NS:verify-suspects:P  hash    key (canonical JSON) -> suspect (JSON, ``tasks.verify.confirm``)
    NS:verify-report:P:N  list    pass N's confirmed drift keys without repair (at most
                                  ``REPORT_LIMIT``; kept ``REPORT_TTL``)

Only the lease holder writes: each write is a transaction that fails (``LeaseLost``) when the
lease changed hands since it was checked, so a verifier frozen past its lease (SIGSTOP, a long
pause) cannot overwrite the cursor of the one that took over.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from tasks.coord.redis_conn import text, texts
from tasks.core.config import settings
from tasks.core.errors import TransientError

LEASE_SECONDS = 30.0
REPORT_LIMIT = 1000
REPORT_TTL = 7 * 24 * 3600
COUNTS = ("items", "missing", "different", "extraneous", "repaired", "unrepaired")


class LeaseLost(TransientError):
    """Another verifier holds the pipeline now."""


def verifier_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Cursor:
    """The pass in hand: its job, the shuffled segment order and how many were sent."""

    number: int = 0  # 0: no pass started yet
    job: str = ""
    order: list[int] = field(default_factory=list)
    sent: int = 0
    started: float = 0.0  # epoch seconds
    records: int = 0  # the job's records read so far
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))

    def fields(self) -> dict[str, str]:
        return {
            "pass": str(self.number),
            "job": self.job,
            "order": json.dumps(self.order),
            "sent": str(self.sent),
            "started": repr(self.started),
            "cursor": str(self.records),
            "counts": json.dumps(self.counts, sort_keys=True),
        }

    @classmethod
    def of(cls, row: Mapping[str, str]) -> Cursor:
        if not row.get("job"):
            return cls(number=int(row.get("pass", 0) or 0))
        return cls(
            int(row["pass"]),
            row["job"],
            json.loads(row["order"]),
            int(row["sent"]),
            float(row["started"]),
            int(row.get("cursor", 0) or 0),
            {**dict.fromkeys(COUNTS, 0), **json.loads(row.get("counts") or "{}")},
        )


class VerifyState:
    """One pipeline's verifier state, written only by the holder of its lease."""

    def __init__(self, client: redis.Redis, pipeline: str, owner: str) -> None:
        self.redis, self.pipeline, self.owner = client, pipeline, owner
        self.key = settings().key("verify", pipeline)
        self.lease_key = settings().key("verify-lease", pipeline)
        self.suspects_key = settings().key("verify-suspects", pipeline)

    # -- the lease ---------------------------------------------------------------------------

    def hold(self) -> bool:
        """Take the lease if it is free, or renew it if it is ours: True when we hold it."""
        ms = int(LEASE_SECONDS * 1000)
        if self.redis.set(self.lease_key, self.owner, nx=True, px=ms):
            return True
        try:
            self._write(lambda pipe: pipe.pexpire(self.lease_key, ms))
        except LeaseLost:
            return False
        return True

    def holder(self) -> str | None:
        found = self.redis.get(self.lease_key)
        return text(found) if found else None

    def release(self) -> None:
        """Hand the lease back (a stopping verifier), so that another may sweep at once."""
        self._write(lambda pipe: pipe.delete(self.lease_key))

    def _write(self, queue: Callable[[redis.client.Pipeline], Any]) -> None:
        """Queue writes in a transaction that applies only while we hold the lease."""
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(self.lease_key)  # type: ignore[no-untyped-call]
                if text(pipe.get(self.lease_key) or b"") != self.owner:
                    raise LeaseLost(f"verifier of {self.pipeline}: the lease is not ours")
                pipe.multi()
                queue(pipe)
                pipe.execute()
            except redis.WatchError as exc:
                raise LeaseLost(f"verifier of {self.pipeline}: the lease changed hands") from exc

    # -- the pass ------------------------------------------------------------------------------

    def cursor(self) -> Cursor:
        return Cursor.of(texts(self.redis.hgetall(self.key)))

    def save(self, cursor: Cursor, last: Mapping[str, Any] | None = None) -> None:
        fields = cursor.fields()
        if last is not None:
            fields["last"] = json.dumps(last, sort_keys=True)
        self._write(lambda pipe: pipe.hset(self.key, mapping=fields))  # type: ignore[arg-type]

    def last(self) -> dict[str, Any] | None:
        found = self.redis.hget(self.key, "last")
        return json.loads(found) if found else None

    # -- suspects and the report ---------------------------------------------------------------

    def suspects(self) -> dict[str, dict[str, Any]]:
        return {text(k): json.loads(v) for k, v in self.redis.hgetall(self.suspects_key).items()}

    def keep(
        self,
        suspects: Mapping[str, Mapping[str, Any]],
        gone: list[str],
        cursor: Cursor | None = None,
        reported: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Store suspects (and drop ``gone``), with the cursor and report entries, at once."""

        def queue(pipe: redis.client.Pipeline) -> None:
            if suspects:
                rows = {k: json.dumps(v, sort_keys=True) for k, v in suspects.items()}
                pipe.hset(self.suspects_key, mapping=rows)  # type: ignore[arg-type]
            if gone:
                pipe.hdel(self.suspects_key, *gone)
            if cursor is not None:
                pipe.hset(self.key, mapping=cursor.fields())  # type: ignore[arg-type]
            if reported and cursor is not None:
                name = report_key(self.pipeline, cursor.number)
                pipe.rpush(name, *(json.dumps(e, sort_keys=True) for e in reported))
                pipe.ltrim(name, 0, REPORT_LIMIT - 1)
                pipe.expire(name, REPORT_TTL)

        self._write(queue)


def report_key(pipeline: str, number: int) -> str:
    return settings().key("verify-report", pipeline, str(number))


def report(client: redis.Redis, pipeline: str, number: int) -> list[dict[str, Any]]:
    return [json.loads(e) for e in client.lrange(report_key(pipeline, number), 0, -1)]


def read(client: redis.Redis, pipeline: str) -> tuple[Cursor, dict[str, Any] | None]:
    """The pass in hand and the last full pass's summary (None before the first), for
    ``replicator status`` and ``replicator verify report``."""
    row = texts(client.hgetall(settings().key("verify", pipeline)))
    last = json.loads(row["last"]) if row.get("last") else None
    return Cursor.of(row), last
