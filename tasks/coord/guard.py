"""No stale overwrite: detect when another task touched a key between our read and our write.

Two tasks for one key may run at once: A reads the primary (old state), B reads (new state),
B writes, then A writes the old state over B's. Each task therefore claims its keys with a
unique token *before* reading the primary, and after writing the replica it checks the claims
again. A key whose claim now holds another token was claimed by a task that started after ours;
its write may have landed before ours, so we read and write that key again (new token) until no
one else claimed it in between. The task whose write lands last has always seen its own token,
or it repeats: so the last write was read after every change that had a task started for it.
A claim that expired reads as "claimed by another" (safe side).

Layout: the claims of one target live in one Redis hash per hour of *Redis's* clock
(``ticket:TARGET:HOUR``, field: the key's id, value: the token of its latest claim). A claim
writes the current hour's hash; a check reads the current and the previous hour's, the newer
first. Redis's clock (``TIME`` inside the script), not the workers', decides the hour, so a
later claim always lands in the same or a newer hash whatever the workers' clocks say. A claim
stays visible for at least ``TICKET_TTL_SECONDS`` (between one and two hours) and the hash
expires once no check reads it.

Each step is one script, one round trip and a fixed number of Redis commands whatever the
number of keys: ``claim`` (with the release of the keys' pending marks, ``tasks.coord.pending``),
``contended`` (before writing), and ``settle`` (after writing: the check, and the counters and
lag samples of the keys done, ``tasks.coord.stats``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from tasks.coord import stats
from tasks.coord.pending import Release
from tasks.core.config import settings

TICKET_TTL_SECONDS = 3600  # a claim is visible at least this long (and at most twice)
_BUCKET = TICKET_TTL_SECONDS

# Shared by the scripts. Ids and times travel as one space-separated argument each and flags
# come back as one string ("0" mine, "1" contended), so that packing a call and reading its reply
# cost the client the same for 1 key and for 1,000.
_HOURS = """
local hour = math.floor(tonumber(redis.call('TIME')[1]) / tonumber(ARGV[2]))
local function bucket(offset) return KEYS[1] .. ':' .. (hour - offset) end
local function words(text)
  local found = {}
  for word in string.gmatch(text, '%S+') do found[#found + 1] = word end
  return found
end
-- One command per slice of a long list: Lua's unpack() fails beyond a few thousand values
-- (a backfill or repair page syncs every key of a scan page at once).
local function sliced(command, key, list, step)
  local out = {}
  for first = 1, #list, step do
    local part = redis.call(command, key, unpack(list, first, math.min(#list, first + step - 1)))
    if type(part) == 'table' then
      for i = 1, #part do out[#out + 1] = part[i] end
    end
  end
  return out
end
local function holders(ids)
  local newer = sliced('HMGET', bucket(0), ids, 1000)
  local older = sliced('HMGET', bucket(1), ids, 1000)
  for i = 1, #newer do newer[i] = newer[i] or older[i] end
  return newer
end
local function flags(ids)
  local found, out = holders(ids), {}
  for i = 1, #found do out[i] = (found[i] == ARGV[1]) and '0' or '1' end
  return out
end
"""

# KEYS: ticket prefix, pending hash (or ""); ARGV: token, bucket seconds, released ids, claimed
# ids. Releases the pending marks, then claims.
_CLAIM = """
local released, claimed, fields = words(ARGV[3]), words(ARGV[4]), {}
if #released > 0 and KEYS[2] ~= '' then sliced('HDEL', KEYS[2], released, 1000) end
for i = 1, #claimed do
  fields[#fields + 1] = claimed[i]
  fields[#fields + 1] = ARGV[1]
end
if #fields > 0 then
  sliced('HSET', bucket(0), fields, 2000)
  redis.call('EXPIREAT', bucket(0), (hour + 2) * tonumber(ARGV[2]) + 60)
end
return #claimed
"""

# KEYS: ticket prefix; ARGV: token, bucket seconds, ids. Returns a flag per key.
_CHECK = """
return table.concat(flags(words(ARGV[3])))
"""

# KEYS: ticket prefix, stats hash, lag list, targets set; ARGV: token, bucket seconds, target,
# now, reads, superseded, ids, kinds (a letter per key: "p" put, "d" delete), creation times.
# Returns a flag per key; counts the keys done and records their lag.
_SETTLE = """
local ids, kinds, created = words(ARGV[7]), ARGV[8], words(ARGV[9])
local out, samples, now = {}, {}, tonumber(ARGV[4])
local counts = {reads = tonumber(ARGV[5]), superseded = tonumber(ARGV[6]),
                puts = 0, deletes = 0, contended = 0}
if #ids > 0 then out = flags(ids) end
for i = 1, #out do
  if out[i] == '0' then
    if string.sub(kinds, i, i) == 'p' then counts.puts = counts.puts + 1
    else counts.deletes = counts.deletes + 1 end
    local since = tonumber(created[i])
    if since > 0 then samples[#samples + 1] = math.floor((now - since) * 1000 + 0.5) end
  else
    counts.contended = counts.contended + 1
  end
end
record(KEYS[2], KEYS[3], KEYS[4], ARGV[3], counts, ARGV[4], samples)
return table.concat(out)
"""


@dataclass(frozen=True)
class Written:
    """What a round wrote, for ``settle``: per key, whether it was a put and its change's
    creation time (0: unknown), and the round's counts that do not depend on the check."""

    key_ids: Sequence[str]
    puts: Sequence[bool]
    created: Sequence[float]
    reads: int
    superseded: int


class StaleWriteGuard:
    def __init__(self, client: redis.Redis, target: str) -> None:
        self._redis = client
        self._target = target
        self._prefix = settings().key("ticket", target)

    def claim(self, key_ids: Sequence[str], release: Release | None = None) -> str:
        """Claim keys before reading them (and drop their pending marks); returns the token."""
        token = uuid.uuid4().hex
        dropped = " ".join(release.key_ids) if release else ""
        pending = release.hash if release and dropped else ""
        _script(self._redis, "claim")(
            keys=[self._prefix, pending], args=[token, _BUCKET, dropped, " ".join(key_ids)]
        )
        return token

    def contended(self, key_ids: Sequence[str], token: str) -> list[str]:
        """The keys someone else claimed since we did (their write may precede ours)."""
        if not key_ids:
            return []
        flags = _script(self._redis, "check")(
            keys=[self._prefix], args=[token, _BUCKET, " ".join(key_ids)]
        )
        return _flagged(key_ids, flags)

    def settle(self, token: str, written: Written) -> list[str]:
        """After writing: the keys claimed by another since we did (they go round again);
        counts the others as done, with their lag, in the same round trip."""
        names = stats.names(self._target)
        flags = _script(self._redis, "settle")(
            keys=[self._prefix, names.counters, names.lag, names.targets],
            args=[
                token,
                _BUCKET,
                self._target,
                repr(time.time()),
                written.reads,
                written.superseded,
                " ".join(written.key_ids),
                "".join("p" if put else "d" for put in written.puts),
                " ".join(repr(float(c or 0.0)) for c in written.created),
            ],
        )
        return _flagged(written.key_ids, flags)


def _flagged(key_ids: Sequence[str], flags: bytes | str) -> list[str]:
    """The ids whose flag is "1" (a script's reply: one character per id)."""
    text = flags.decode() if isinstance(flags, bytes) else flags
    if len(text) != len(key_ids):
        raise RuntimeError(f"the guard's script answered {len(text)} flags for {len(key_ids)} keys")
    return [k for k, flag in zip(key_ids, text, strict=True) if flag == "1"]


_SOURCES = {
    "claim": _HOURS + _CLAIM,
    "check": _HOURS + _CHECK,
    "settle": _HOURS + stats.RECORD_LUA + _SETTLE,
}
_registered: dict[tuple[int, str], redis.commands.core.Script] = {}


def _script(client: redis.Redis, name: str) -> redis.commands.core.Script:
    """The script registered once per client (EVALSHA; loaded again if Redis lost it)."""
    found = _registered.get((id(client), name))
    if found is None or found.registered_client is not client:
        found = client.register_script(_SOURCES[name])
        _registered[(id(client), name)] = found
    return found
