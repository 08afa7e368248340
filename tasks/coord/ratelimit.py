"""A rate cap shared by every process of a job: a token bucket in Redis, adapting to throttling.

Readers pay for what they read after reading it (a scan page's size is known only then): the
bucket may go into debt, and the next reader waits until the debt is paid back. The bucket holds
at most one second of tokens, so an idle pause does not allow a burst. Redis's clock is the
only clock used, so machines with skewed clocks share one rate.

Adapting (``watch``: a table and side): the bucket also keeps its current rate and the count of
throttling events of that table (``tasks.coord.stats``: every process's, the job's own and live
replication's alike) it last saw. When that count has grown, the rate halves (at most once a
second, so that one burst of throttling counts once; never below a floor); after each calm
second it grows back by 5 %, never above the rate asked for. So a job
yields to live traffic as soon as anything on its table is throttled.
"""

from __future__ import annotations

import time

import redis

from tasks.coord import stats
from tasks.core.config import settings
from tasks.core.locations import Table

FLOOR_SHARE = 0.02  # an adapting rate never falls below this share of the rate asked for
GROWTH = 0.05  # per calm second

# KEYS[1] bucket, KEYS[2] throttles hash (or ""); ARGV cap, cost, watched field, floor, growth.
# Returns {seconds to wait, current rate} (as strings).
_TAKE = """
local cap, cost = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'rate', 'seen', 'calm', 'cut')
local rate = tonumber(state[3]) or cap
local calm = tonumber(state[5]) or now
if KEYS[2] ~= '' then
  local seen_now = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
  local seen = tonumber(state[4]) or seen_now
  local cut = tonumber(state[6]) or 0
  if seen_now > seen then
    calm = now
    if now - cut >= 1 then
      rate = math.max(tonumber(ARGV[4]), rate / 2)
      redis.call('HSET', KEYS[1], 'cut', now)
    end
  elseif now - calm >= 1 then
    rate, calm = math.min(cap, rate * (1 + tonumber(ARGV[5]) * (now - calm))), now
  end
  redis.call('HSET', KEYS[1], 'seen', seen_now)
end
local tokens = tonumber(state[1]) or rate
local at = tonumber(state[2]) or now
tokens = math.min(rate, tokens + (now - at) * rate) - cost
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now, 'rate', rate, 'calm', calm)
redis.call('EXPIRE', KEYS[1], 3600)
local wait = 0
if tokens < 0 then wait = -tokens / rate end
return {tostring(wait), tostring(rate)}
"""


class RateLimiter:
    """At most ``rate`` units per second across every process using the same ``name``; with
    ``watch`` (a table and side), less while that table is throttled."""

    def __init__(
        self, client: redis.Redis, name: str, rate: float, watch: Table | None = None
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._client = client
        self._script = client.register_script(_TAKE)
        self._key = settings().key("rate", name)
        self._rate = rate
        self._watch = watch
        self.current = rate  # the rate in force at the last take

    def take(self, cost: float) -> float:
        """Pay for ``cost`` units; sleep while the bucket is in debt. Returns the seconds slept."""
        if cost <= 0:
            return 0.0
        if self._watch:
            stats.flush_throttles(self._client)  # this process's throttling counts at once
        watched = stats.throttles_name() if self._watch else ""
        field = stats.throttle_field(self._watch) if self._watch else ""
        args: list[str | float] = [self._rate, cost, field, self._rate * FLOOR_SHARE, GROWTH]
        wait, rate = self._script(keys=[self._key, watched], args=args)
        self.current = float(rate)
        if float(wait) > 0:
            time.sleep(float(wait))
        return float(wait)


def rate_in_force(client: redis.Redis, name: str) -> float | None:
    """The rate a job's bucket allows now (None before its first take)."""
    found = client.hget(settings().key("rate", name), "rate")
    return float(found) if found is not None else None
