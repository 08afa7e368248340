"""Per-shard checkpoints in Redis: the last sequence number whose records are safely enqueued.

One hash per consumer (the checkpoint name): field = shard id, value = sequence number, or
``SHARD_END`` once a closed shard has been drained. A second hash keeps when each field was
last written (checkpoint age).

Every write is *fenced*: one Lua script writes the checkpoint only if the writer still holds the
shard's lease with the same token (``producer.leases``). A producer that lost the lease (frozen,
cut off from Redis, or told to hand the shard over) cannot move the new owner's checkpoint,
backwards or forwards. Writing ``SHARD_END`` also ends the shard's lease: a finished shard
needs no owner.
"""

from __future__ import annotations

import time

import redis

from producer.sources import SHARD_END
from tasks.coord.redis_conn import text
from tasks.core.config import settings

# KEYS checkpoints, times, lease, history; ARGV shard, owner, token, sequence.
_WRITE = """
local raw = redis.call('HGET', KEYS[3], ARGV[1])
if not raw then return 0 end
local lease = cjson.decode(raw)
if lease.owner ~= ARGV[2] or lease.token ~= tonumber(ARGV[3]) then return 0 end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], t[1] .. '.' .. string.format('%06d', tonumber(t[2])))
if ARGV[4] == 'SHARD_END' then
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', 10000, '*', 'shard', ARGV[1], 'event', 'finish',
             'owner', ARGV[2], 'token', ARGV[3],
             'at', string.format('%d.%03d',
                                 tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000),
                                 tonumber(t[2]) % 1000),
             'previous', ARGV[2], 'previous_expires', lease.expires)
end
return 1
"""

# KEYS checkpoints, times; ARGV shard. Marks a shard that vanished unfinished; 1 if we did.
_VANISHED = """
local seq = redis.call('HGET', KEYS[1], ARGV[1])
if not seq or seq == 'SHARD_END' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], 'SHARD_END')
return 1
"""


class Checkpoints:
    def __init__(self, client: redis.Redis, consumer: str) -> None:
        cfg = settings()
        self._redis = client
        self._name = cfg.key("checkpoint", consumer)
        self._times = cfg.key("checkpoint-time", consumer)
        self._lease = cfg.key("lease", consumer)
        self._history = cfg.key("lease-history", consumer)
        self._write = client.register_script(_WRITE)
        self._vanished = client.register_script(_VANISHED)

    def load(self) -> dict[str, str]:
        return {text(k): text(v) for k, v in self._redis.hgetall(self._name).items()}

    def get(self, shard_id: str) -> str | None:
        value = self._redis.hget(self._name, shard_id)
        return text(value) if value is not None else None

    def save(self, shard_id: str, sequence: str, owner: str, token: int) -> bool:
        """Write the checkpoint if ``owner`` still holds the shard's lease with ``token``."""
        keys = [self._name, self._times, self._lease, self._history]
        return bool(self._write(keys=keys, args=[shard_id, owner, token, sequence]))

    def finish(self, shard_id: str, owner: str, token: int) -> bool:
        return self.save(shard_id, SHARD_END, owner, token)

    def vanished(self, shard_id: str) -> bool:
        """Mark a shard the stream no longer lists as done; True for the one caller that did."""
        return bool(self._vanished(keys=[self._name, self._times], args=[shard_id]))

    def ages(self) -> dict[str, float]:
        now = time.time()
        return {text(k): now - float(v) for k, v in self._redis.hgetall(self._times).items()}

    def forget(self, shard_ids: list[str]) -> None:
        """Drop retired shards that the stream no longer lists."""
        if shard_ids:
            self._redis.hdel(self._name, *shard_ids)
            self._redis.hdel(self._times, *shard_ids)
