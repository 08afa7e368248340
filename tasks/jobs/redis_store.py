"""Job records in Redis, shared by the command and every worker.

Redis layout (namespace NS, job J, segment I); every key expires ``JOB_TTL`` after its last write::

    NS:job:J            hash  kind, segments, params (JSON), created, cancelled
    NS:job:J:seg:I      hash  status, deliveries, error, checkpoint (JSON), c:NAME counters,
                              attempt, reason, progress_at, total (of the counters), reached
    NS:job:J:records    list  records in the order segments appended them
    NS:jobs             zset  job ids by creation time (what ``jobs`` lists)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis
from redis.typing import EncodableT

from tasks.coord.redis_conn import text, texts
from tasks.core.config import settings
from tasks.core.errors import NotFoundError
from tasks.jobs.model import (
    DONE,
    FAILED,
    RETRYING,
    RUNNING,
    WAITING,
    Job,
    Page,
    SegmentState,
    Snapshot,
    new_job_id,
)

JOB_TTL = 7 * 24 * 3600
_COUNTER = "c:"
_WATCHED = ("deliveries", "total", "reached")  # read in every transaction (never the checkpoint)


class RedisJobStore:
    """Job records in Redis, shared by the command and every worker."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def _job(self, job_id: str) -> str:
        return settings().key("job", job_id)

    def _seg(self, job_id: str, segment: int) -> str:
        return f"{self._job(job_id)}:seg:{segment}"

    def create(self, kind: str, segments: int, params: Mapping[str, Any]) -> Job:
        job = Job(new_job_id(), kind, segments, dict(params))
        name = self._job(job.id)
        pipe = self._redis.pipeline()
        pipe.hset(
            name,
            mapping={
                "kind": kind,
                "segments": segments,
                "created": time.time(),
                "params": json.dumps(job.params, sort_keys=True),
            },
        )
        pipe.expire(name, JOB_TTL)
        pipe.zadd(self._index(), {job.id: time.time()})
        for i in range(segments):
            pipe.hset(self._seg(job.id, i), "status", WAITING)
            pipe.expire(self._seg(job.id, i), JOB_TTL)
        pipe.execute()
        return job

    def _index(self) -> str:
        return settings().key("jobs")

    def jobs(self) -> list[Job]:
        """Every job whose record has not expired, oldest first (expired ones leave the index)."""
        found, gone = [], []
        for raw in self._redis.zrange(self._index(), 0, -1):
            job_id = text(raw)  # type: ignore[arg-type]  # members only, no scores
            try:
                found.append(self.load(job_id))
            except NotFoundError:
                gone.append(job_id)
        if gone:
            self._redis.zrem(self._index(), *gone)
        return found

    def load(self, job_id: str) -> Job:
        raw = texts(self._redis.hgetall(self._job(job_id)))
        if not raw:
            raise NotFoundError(f"bulk job {job_id} does not exist (or expired)")
        return Job(job_id, raw["kind"], int(raw["segments"]), json.loads(raw["params"]))

    def start(self, job_id: str, segment: int) -> SegmentState | None:
        if self._redis.hget(self._job(job_id), "cancelled"):
            return None
        name = self._seg(job_id, segment)
        pipe = self._redis.pipeline()
        pipe.hincrby(name, "deliveries", 1)
        pipe.hget(name, "status")
        _, status = pipe.execute()
        if status != DONE.encode():
            fresh = {} if status == RETRYING.encode() else _calm()
            self._redis.hset(name, mapping={"status": RUNNING, **fresh})
        return self._state(job_id, segment)

    def advance(self, job_id: str, segment: int, page: Page, delivery: int = 0) -> bool:
        name, records = self._seg(job_id, segment), f"{self._job(job_id)}:records"

        def queue(pipe: redis.client.Pipeline, before: Mapping[str, int]) -> None:
            for counter, n in page.counts.items():
                if n:
                    pipe.hincrby(name, _COUNTER + counter, n)
            pipe.hset(name, "checkpoint", json.dumps(page.checkpoint))
            added = sum(page.counts.values())
            if added:
                pipe.hincrby(name, "total", added)
            if before["total"] + added > before["reached"]:  # progress
                pipe.hset(name, mapping={"reached": before["total"] + added, **_calm()})
            if page.records:
                pipe.rpush(records, *page.records)
                pipe.expire(records, JOB_TTL)
            pipe.expire(name, JOB_TTL)
            pipe.hget(self._job(job_id), "cancelled")

        done = self._if_current(name, delivery, queue)
        return done is not None and not done[-1]

    def retrying(
        self, job_id: str, segment: int, reason: str, delivery: int = 0
    ) -> SegmentState | None:
        name = self._seg(job_id, segment)

        def queue(pipe: redis.client.Pipeline, _: Mapping[str, int]) -> None:
            pipe.hset(name, mapping={"status": RETRYING, "reason": reason})
            pipe.hincrby(name, "attempt", 1)
            pipe.hgetall(name)

        done = self._if_current(name, delivery, queue)
        return None if done is None else _state_from(texts(done[-1]))

    def finish(self, job_id: str, segment: int, error: str = "", delivery: int = 0) -> None:
        mapping: dict[str | bytes, str | bytes] = (
            {"status": FAILED, "error": error} if error else {"status": DONE}
        )
        name = self._seg(job_id, segment)
        self._if_current(
            name,
            delivery,
            lambda pipe, _: pipe.hset(name, mapping=mapping),  # type: ignore[arg-type]
        )

    def _if_current(
        self,
        name: str,
        delivery: int,
        queue: Callable[[redis.client.Pipeline, Mapping[str, int]], object],
    ) -> list[Any] | None:
        """Run the queued commands in one transaction if ``delivery`` is still the segment's
        latest (or is 0); their results, or None when a later delivery took over. ``queue``
        gets the ``_WATCHED`` fields as they were when the transaction began."""
        with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(name)  # type: ignore[no-untyped-call]
                    values = pipe.hmget(name, _WATCHED)
                    before = {k: int(v or 0) for k, v in zip(_WATCHED, values, strict=True)}
                    if delivery and before["deliveries"] != delivery:
                        pipe.unwatch()
                        return None
                    pipe.multi()
                    queue(pipe, before)
                    return list(pipe.execute())
                except redis.WatchError:
                    continue

    def _state(self, job_id: str, segment: int) -> SegmentState:
        return _state_from(texts(self._redis.hgetall(self._seg(job_id, segment))))

    def snapshot(self, job_id: str) -> Snapshot:
        job = self.load(job_id)
        pipe = self._redis.pipeline(transaction=False)
        for i in range(job.segments):
            pipe.hgetall(self._seg(job_id, i))
        pipe.hget(self._job(job_id), "cancelled")
        *rows, cancelled = pipe.execute()
        states = [_state_from(texts(row)) for row in rows]
        return Snapshot(states, cancelled=bool(cancelled))

    def records(self, job_id: str, start: int) -> list[str]:
        return [text(r) for r in self._redis.lrange(f"{self._job(job_id)}:records", start, -1)]

    def cancel(self, job_id: str) -> None:
        self._redis.hset(self._job(job_id), "cancelled", 1)


def _state_from(raw: Mapping[str, str]) -> SegmentState:
    return SegmentState(
        status=raw.get("status", WAITING),
        counts={k[len(_COUNTER) :]: int(v) for k, v in raw.items() if k.startswith(_COUNTER)},
        checkpoint=json.loads(raw["checkpoint"]) if "checkpoint" in raw else None,
        error=raw.get("error", ""),
        deliveries=int(raw.get("deliveries", 0)),
        attempt=int(raw.get("attempt", 0)),
        reason=raw.get("reason", ""),
        progress_at=float(raw.get("progress_at", 0)),
        reached=int(raw.get("reached", 0)),
    )


def _calm() -> dict[EncodableT, EncodableT]:
    """The fields a fresh start or progress sets: no failures since now."""
    return {"attempt": 0, "reason": "", "progress_at": time.time()}
