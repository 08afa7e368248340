"""Per-shard checkpoints in Redis: the last sequence number whose records are safely enqueued.

One hash per consumer (stream + targets): field = shard id, value = sequence number, or
``SHARD_END`` once a closed shard has been drained. A second hash keeps when each field was
last written (checkpoint age).
"""

from __future__ import annotations

import time

import redis

from producer.sources import SHARD_END
from tasks.coord.redis_conn import text
from tasks.core.config import settings


class Checkpoints:
    def __init__(self, client: redis.Redis, consumer: str) -> None:
        self._redis = client
        self._name = settings().key("checkpoint", consumer)
        self._times = settings().key("checkpoint-time", consumer)

    def load(self) -> dict[str, str]:
        return {text(k): text(v) for k, v in self._redis.hgetall(self._name).items()}

    def save(self, shard_id: str, sequence: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._name, shard_id, sequence)
        pipe.hset(self._times, shard_id, time.time())
        pipe.execute()

    def finish(self, shard_id: str) -> None:
        self.save(shard_id, SHARD_END)

    def ages(self) -> dict[str, float]:
        now = time.time()
        return {text(k): now - float(v) for k, v in self._redis.hgetall(self._times).items()}

    def forget(self, shard_ids: list[str]) -> None:
        """Drop retired shards that the stream no longer lists."""
        if shard_ids:
            self._redis.hdel(self._name, *shard_ids)
            self._redis.hdel(self._times, *shard_ids)
