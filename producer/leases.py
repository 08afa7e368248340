"""Shard leases in Redis: one owner per shard among the producers that share a checkpoint name.

Per checkpoint name (the *consumer*), one hash holds a lease per shard::

    {"owner": "host:pid:ab12", "token": 17, "expires": <ms, Redis clock>,
     "wanted": "<a producer that asked for it>", "reserved": "<who may take it next>"}

* **Token.** Every change of owner takes a new token from one counter, so tokens only grow.
  Checkpoint writes compare the writer's token with the lease's (``producer.checkpoints``): a
  producer that lost a lease, even one frozen and woken up again, cannot move a checkpoint.
* **Expiry.** An owner renews its leases every tick; a lease whose owner stopped renewing expires
  and any producer may take it (a *takeover*). Readers stop reading a shard at a deadline taken
  before the renewal was sent and shorter than the lease, so a producer that cannot renew stops
  before anyone else may start.
* **Handing over.** A producer below its fair share asks an owner for a shard (``wanted``); the
  owner stops reading it after the page in hand, checkpoints and releases it, reserved for the
  asker for one lease time. SIGTERM releases every lease the same way.
* **Producers.** Each producer heartbeats into a sorted set; the live ones (heartbeat younger than
  a lease) give the fair share: ``ceil(ready shards / live producers)``.
* **History.** Every change of owner is appended to a capped Redis stream (``history``), with
  Redis's time (``at``, milliseconds to the microsecond).

Redis's clock is the only clock compared across processes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from tasks.coord.redis_conn import text
from tasks.core.config import settings

HISTORY_LENGTH = 10_000

_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local at = string.format('%d.%03d', now, tonumber(t[2]) % 1000)  -- ms, to the microsecond
local function get(shard)
  local raw = redis.call('HGET', KEYS[1], shard)
  if raw then return cjson.decode(raw) end
  return {owner = '', token = 0, expires = 0, wanted = '', reserved = ''}
end
local function put(shard, lease) redis.call('HSET', KEYS[1], shard, cjson.encode(lease)) end
local function log(shard, event, owner, token, previous)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', HISTORY_LENGTH, '*', 'shard', shard, 'event', event,
             'owner', owner, 'token', token, 'at', at,
             'previous', previous.owner, 'previous_expires', previous.expires)
end
""".replace("HISTORY_LENGTH", str(HISTORY_LENGTH))

# KEYS lease, history, token counter, checkpoints; ARGV shard, me, lease ms.
# Returns {token, checkpoint or ''} or nil when someone else holds (or is promised) the lease.
_ACQUIRE = (
    _PRELUDE
    + """
if redis.call('HGET', KEYS[4], ARGV[1]) == 'SHARD_END' then return nil end
local lease = get(ARGV[1])
if lease.owner ~= '' and lease.owner ~= ARGV[2] and lease.expires > now then return nil end
if lease.owner == '' and lease.reserved ~= '' and lease.reserved ~= ARGV[2]
   and lease.expires > now then return nil end
local token = redis.call('INCR', KEYS[3])
local event = 'acquire'
if lease.owner ~= '' and lease.owner ~= ARGV[2] then event = 'takeover' end
log(ARGV[1], event, ARGV[2], token, lease)
put(ARGV[1], {owner = ARGV[2], token = token, expires = now + tonumber(ARGV[3]),
              wanted = '', reserved = ''})
return {token, redis.call('HGET', KEYS[4], ARGV[1]) or ''}
"""
)

# KEYS lease, history, producers; ARGV me, lease ms, then shard, token pairs.
# Heartbeats, then returns one status per pair: 0 lost, 1 renewed, 2 renewed but wanted.
_RENEW = (
    _PRELUDE
    + """
local lease_ms = tonumber(ARGV[2])
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - lease_ms)
redis.call('PEXPIRE', KEYS[3], 10 * lease_ms + 86400000)
local result = {}
for i = 3, #ARGV, 2 do
  local lease = get(ARGV[i])
  local status = 0
  if lease.owner == ARGV[1] and lease.token == tonumber(ARGV[i + 1]) then
    lease.expires = now + lease_ms
    if lease.wanted ~= '' and not redis.call('ZSCORE', KEYS[3], lease.wanted) then
      lease.wanted = ''
    end
    put(ARGV[i], lease)
    status = 1
    if lease.wanted ~= '' then status = 2 end
  end
  result[#result + 1] = status
end
return result
"""
)

# KEYS lease, history; ARGV shard, me, token, lease ms. A wanted lease stays promised to the
# producer that asked for it for one lease time.
_RELEASE = (
    _PRELUDE
    + """
local lease = get(ARGV[1])
if lease.owner ~= ARGV[2] or lease.token ~= tonumber(ARGV[3]) then return 0 end
log(ARGV[1], 'release', '', lease.token, lease)
local expires = 0
if lease.wanted ~= '' then expires = now + tonumber(ARGV[4]) end
put(ARGV[1], {owner = '', token = lease.token, expires = expires, wanted = '',
              reserved = lease.wanted})
return 1
"""
)

# KEYS lease; ARGV shard, me, owner, token. Ask the owner for the shard.
_REQUEST = (
    _PRELUDE
    + """
local lease = get(ARGV[1])
if lease.owner ~= ARGV[3] or lease.token ~= tonumber(ARGV[4]) or lease.expires <= now then
  return 0
end
if lease.wanted ~= '' and lease.wanted ~= ARGV[2] then return 0 end
lease.wanted = ARGV[2]
put(ARGV[1], lease)
return 1
"""
)


@dataclass(frozen=True)
class LeaseRecord:
    """A shard's lease as Redis holds it."""

    owner: str
    token: int
    expires: int  # ms, Redis clock
    wanted: str = ""
    reserved: str = ""

    def held(self, now_ms: int) -> bool:
        return bool(self.owner) and self.expires > now_ms

    def free_for(self, me: str, now_ms: int) -> bool:
        """True when ``me`` may take it now: free, expired, or promised to ``me``."""
        if self.owner:
            return self.owner != me and self.expires <= now_ms
        return not self.reserved or self.reserved == me or self.expires <= now_ms


@dataclass(frozen=True)
class Snapshot:
    now_ms: int
    leases: dict[str, LeaseRecord]
    producers: list[str]  # the live ones


class LeaseTable:
    """The leases of one checkpoint name (``consumer``), as seen by the producer ``me``."""

    def __init__(self, client: redis.Redis, consumer: str, me: str, lease_seconds: float) -> None:
        cfg = settings()
        self._redis, self.me, self.consumer = client, me, consumer
        self.lease_ms = int(lease_seconds * 1000)
        self.key = cfg.key("lease", consumer)
        self.history_key = cfg.key("lease-history", consumer)
        self.producers_key = cfg.key("producers", consumer)
        self._tokens = cfg.key("lease-token", consumer)
        self._checkpoints = cfg.key("checkpoint", consumer)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._request = client.register_script(_REQUEST)

    def leave(self) -> None:
        """No longer counted among the live producers (after releasing every lease)."""
        self._redis.zrem(self.producers_key, self.me)

    def snapshot(self) -> Snapshot:
        pipe = self._redis.pipeline(transaction=False)
        pipe.time()
        pipe.hgetall(self.key)
        pipe.zrange(self.producers_key, 0, -1, withscores=True)
        (seconds, micros), raw, beats = pipe.execute()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        leases = {text(k): _record(v) for k, v in raw.items()}
        live = [text(m) for m, at in beats if at > now_ms - self.lease_ms]
        return Snapshot(now_ms, leases, live)

    def acquire(self, shard_id: str) -> tuple[int, str | None] | None:
        """Take the lease (free, expired or promised to us): (token, checkpoint) or None."""
        keys = [self.key, self.history_key, self._tokens, self._checkpoints]
        got = self._acquire(keys=keys, args=[shard_id, self.me, self.lease_ms])
        if not got:
            return None
        token, checkpoint = got
        return int(token), (text(checkpoint) or None)

    def renew(self, tokens: dict[str, int]) -> dict[str, int]:
        """Heartbeat and renew; per shard 0 (lost), 1 (renewed) or 2 (renewed, wanted)."""
        args: list[Any] = [self.me, self.lease_ms]
        for shard_id, token in tokens.items():
            args += [shard_id, token]
        statuses = self._renew(keys=[self.key, self.history_key, self.producers_key], args=args)
        return {shard_id: int(s) for shard_id, s in zip(tokens, statuses, strict=True)}

    def release(self, shard_id: str, token: int) -> bool:
        args: list[str | int] = [shard_id, self.me, token, self.lease_ms]
        return bool(self._release(keys=[self.key, self.history_key], args=args))

    def request(self, shard_id: str, owner: str, token: int) -> bool:
        """Ask ``owner`` to hand the shard over to us."""
        return bool(self._request(keys=[self.key], args=[shard_id, self.me, owner, token]))

    def drop(self, shard_ids: list[str]) -> None:
        """Forget the leases of shards the stream no longer lists."""
        if shard_ids:
            self._redis.hdel(self.key, *shard_ids)

    def history(self) -> list[dict[str, str]]:
        """Every recorded change of owner, oldest first."""
        entries: list[tuple[Any, dict[bytes | str, bytes | str]]] = self._redis.xrange(
            self.history_key
        )  # type: ignore[assignment]
        return [{text(k): text(v) for k, v in fields.items()} for _, fields in entries]


def _record(raw: bytes | str) -> LeaseRecord:
    data = json.loads(raw)
    return LeaseRecord(
        owner=str(data.get("owner") or ""),
        token=int(data.get("token") or 0),
        expires=int(data.get("expires") or 0),
        wanted=str(data.get("wanted") or ""),
        reserved=str(data.get("reserved") or ""),
    )
