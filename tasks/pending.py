"""Coalescing: a key already waiting in the queue is not enqueued again.

The producer marks a key pending when it enqueues it; the task releases the mark as it starts,
*before* it reads the primary, so any change after that read finds the key unmarked and enqueues
it again. Marks belong to one producer run (its session): a producer that died between marking
and sending cannot leave keys marked for the next run, which starts with a fresh set.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from tasks.config import settings

SESSION_TTL_SECONDS = 7 * 24 * 3600


def _name(target: str, session: str) -> str:
    return settings().key("pending", target, session)


def mark(client: redis.Redis, target: str, session: str, key_ids: Sequence[str]) -> list[bool]:
    """Mark keys pending; True for each key that was not pending yet (enqueue those)."""
    name = _name(target, session)
    pipe = client.pipeline(transaction=False)
    for key_id in key_ids:
        pipe.sadd(name, key_id)
    pipe.expire(name, SESSION_TTL_SECONDS)
    added = pipe.execute()[:-1]
    return [bool(n) for n in added]


def release(
    pipe: redis.client.Pipeline, target: str, session: str | None, key_ids: Sequence[str]
) -> None:
    """Queue the release of the marks on a pipeline (the caller executes it)."""
    if session and key_ids:
        pipe.srem(_name(target, session), *key_ids)


def count(client: redis.Redis, target: str, session: str) -> int:
    return int(client.scard(_name(target, session)))
