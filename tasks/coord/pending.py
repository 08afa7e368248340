"""Coalescing: a key already waiting in the queue is not enqueued again.

The producer marks a key pending when it enqueues it; the task releases the mark as it starts,
*before* it reads the primary, so any change after that read finds the key unmarked and enqueues
it again. Marks belong to one producer run (its session): a producer that died between marking
and sending cannot leave keys marked for the next run, which starts with a fresh set. A mark
older than ``pending_ttl`` seconds no longer counts, so a message lost by the broker can delay a
key's next replication by that long at most.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis

from tasks.core.config import settings

SESSION_TTL_SECONDS = 7 * 24 * 3600  # an abandoned session's marks go away after this

# KEYS[1] = the session's hash; ARGV = now, ttl, session ttl, key ids...
# Returns 1 for each id newly marked (absent, or marked longer ago than ttl), else 0.
_MARK = """
local now, ttl, fresh = tonumber(ARGV[1]), tonumber(ARGV[2]), {}
for i = 4, #ARGV do
  local since = redis.call('HGET', KEYS[1], ARGV[i])
  if (not since) or (now - tonumber(since) > ttl) then
    redis.call('HSET', KEYS[1], ARGV[i], now)
    fresh[#fresh + 1] = 1
  else
    fresh[#fresh + 1] = 0
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return fresh
"""


def _name(target: str, session: str) -> str:
    return settings().key("pending", target, session)


def mark(client: redis.Redis, target: str, session: str, key_ids: Sequence[str]) -> list[bool]:
    """Mark keys pending; True for each key that was not pending yet (enqueue those)."""
    if not key_ids:
        return []
    script = client.register_script(_MARK)
    fresh = script(
        keys=[_name(target, session)],
        args=[time.time(), settings().pending_ttl, SESSION_TTL_SECONDS, *key_ids],
    )
    return [bool(n) for n in fresh]


def release(
    pipe: redis.client.Pipeline, target: str, session: str | None, key_ids: Sequence[str]
) -> None:
    """Queue the release of the marks on a pipeline (the caller executes it)."""
    if session and key_ids:
        pipe.hdel(_name(target, session), *key_ids)


def count(client: redis.Redis, target: str, session: str) -> int:
    return int(client.hlen(_name(target, session)))
