"""A read-rate cap shared by every process of a job: a token bucket in Redis.

Readers pay for what they read after reading it (a scan page's size is known only then): the
bucket may go into debt, and the next reader waits until the debt is paid back. The bucket holds
at most one second of tokens, so an idle pause does not allow a burst. Redis's clock is the
only clock used, so machines with skewed clocks share one rate.
"""

from __future__ import annotations

import time

import redis

from tasks.core.config import settings

# KEYS[1] bucket; ARGV rate, cost. Returns the seconds to wait (as a string).
_TAKE = """
local rate = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or rate
local at = tonumber(state[2]) or now
tokens = math.min(rate, tokens + (now - at) * rate) - cost
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], 3600)
if tokens >= 0 then return '0' end
return tostring(-tokens / rate)
"""


class RateLimiter:
    """At most ``rate`` units per second across every process using the same ``name``."""

    def __init__(self, client: redis.Redis, name: str, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._script = client.register_script(_TAKE)
        self._key = settings().key("rate", name)
        self._rate = rate

    def take(self, cost: int) -> float:
        """Pay for ``cost`` units; sleep while the bucket is in debt. Returns the seconds slept."""
        if cost <= 0:
            return 0.0
        wait = float(self._script(keys=[self._key], args=[self._rate, cost]))
        if wait > 0:
            time.sleep(wait)
        return wait
