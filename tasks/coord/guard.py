"""No stale overwrite: detect when another task touched a key between our read and our write.

Two tasks for one key may run at once: A reads the primary (old state), B reads (new state),
B writes, then A writes the old state over B's. Each task therefore claims its keys with a
unique token (``SET ticket:KEY TOKEN``) *before* reading the primary, and after writing the
replica it checks the tickets again. A key whose ticket now holds another token was claimed by a
task that started after ours; its write may have landed before ours, so we read and write that
key again (new token) until no one else claimed it in between. The task whose write lands last
has always seen its own token, or it repeats: so the last write was read after every change that
had a task started for it. A ticket that expired reads as "claimed by another" (safe side).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import redis

from tasks.core.config import settings

TICKET_TTL_SECONDS = 3600


class StaleWriteGuard:
    def __init__(self, client: redis.Redis, target: str) -> None:
        self._redis = client
        self._prefix = settings().key("ticket", target)

    def _name(self, key_id: str) -> str:
        return f"{self._prefix}:{key_id}"

    def claim(self, key_ids: Sequence[str], pipe: redis.client.Pipeline | None = None) -> str:
        """Claim keys before reading them; returns this round's token."""
        token = uuid.uuid4().hex
        own = pipe is None
        pipe = pipe if pipe is not None else self._redis.pipeline(transaction=False)
        for key_id in key_ids:
            pipe.set(self._name(key_id), token, ex=TICKET_TTL_SECONDS)
        if own:
            pipe.execute()
        return token

    def contended(self, key_ids: Sequence[str], token: str) -> list[str]:
        """The keys someone else claimed since we did (their write may precede ours)."""
        if not key_ids:
            return []
        values = self._redis.mget([self._name(k) for k in key_ids])
        return [k for k, v in zip(key_ids, values, strict=True) if v != token.encode()]
