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
from dataclasses import dataclass

import redis

from tasks.core.config import settings

SESSION_TTL_SECONDS = 7 * 24 * 3600  # an abandoned session's marks go away after this

# KEYS[1] = the session's hash; ARGV = now, ttl, session ttl, key ids...
# Returns 1 for each id newly marked (absent, or marked longer ago than ttl), else 0. A few
# commands per 1,000 keys, whatever the page: one HMGET and one HSET for each slice.
_MARK = """
local now, ttl, fresh, seen = tonumber(ARGV[1]), tonumber(ARGV[2]), {}, {}
for first = 4, #ARGV, 1000 do
  local last = math.min(first + 999, #ARGV)
  local since, fields = redis.call('HMGET', KEYS[1], unpack(ARGV, first, last)), {}
  for i = 1, #since do
    local id = ARGV[first + i - 1]
    if (not seen[id]) and ((not since[i]) or (now - tonumber(since[i]) > ttl)) then
      fields[#fields + 1] = id
      fields[#fields + 1] = ARGV[1]
      fresh[#fresh + 1] = 1
    else
      fresh[#fresh + 1] = 0
    end
    seen[id] = true
  end
  if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return fresh
"""


def name(target: str, session: str) -> str:
    """The hash of a producer session's marks for a target (field: key id, value: when)."""
    return settings().key("pending", target, session)


def mark(client: redis.Redis, target: str, session: str, key_ids: Sequence[str]) -> list[bool]:
    """Mark keys pending; True for each key that was not pending yet (enqueue those)."""
    if not key_ids:
        return []
    script = client.register_script(_MARK)
    fresh = script(
        keys=[name(target, session)],
        args=[time.time(), settings().pending_ttl, SESSION_TTL_SECONDS, *key_ids],
    )
    return [bool(n) for n in fresh]


@dataclass(frozen=True)
class Release:
    """Marks a task drops as it starts: the session's hash and the key ids (the stale-write
    guard drops them in the round trip that claims the keys, ``tasks.coord.guard``)."""

    hash: str
    key_ids: Sequence[str]


def release(target: str, session: str | None, key_ids: Sequence[str]) -> Release | None:
    """The marks to drop for a message of ``session`` (None: nothing to drop)."""
    if not session or not key_ids:
        return None
    return Release(name(target, session), key_ids)


def count(client: redis.Redis, target: str, session: str) -> int:
    return int(client.hlen(name(target, session)))
