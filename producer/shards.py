"""The shard graph: parents are finished before their children start.

A shard is *ready* when it is not finished and each of its parents is finished or no longer
listed by the stream (trimmed away). A parent that vanished before anyone finished it is a gap:
its unread records are gone, and the caller reports that loudly.

The checkpoints are shared by every producer of the same name (whoever read a parent, its
``SHARD_END`` is in Redis), so the graph takes them afresh from Redis (``refresh``) before it
says what is ready. Discovery and the lease keeper run in different threads: a lock guards it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from producer.sources import SHARD_END, ShardInfo


@dataclass
class ShardGraph:
    checkpoints: dict[str, str] = field(default_factory=dict)
    shards: dict[str, ShardInfo] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def refresh(self, checkpoints: dict[str, str]) -> None:
        with self._lock:
            self.checkpoints = dict(checkpoints)

    def update(
        self, listed: list[ShardInfo], checkpoints: dict[str, str] | None = None
    ) -> tuple[list[ShardInfo], list[str]]:
        """Take the stream's current listing; returns (new shards, shards lost unfinished).

        ``checkpoints`` must have been read *before* the stream was listed: a shard created
        while it was being listed may have a checkpoint by now, and is not lost."""
        with self._lock:
            before = self.checkpoints if checkpoints is None else checkpoints
            fresh = [s for s in listed if s.shard_id not in self.shards]
            listed_ids = {s.shard_id for s in listed}
            lost = [
                shard_id
                for shard_id, seq in before.items()
                if shard_id not in listed_ids and seq != SHARD_END
            ]
            self.shards = {s.shard_id: s for s in listed}
            return fresh, lost

    def info(self, shard_id: str) -> ShardInfo | None:
        return self.shards.get(shard_id)

    def finished(self, shard_id: str) -> bool:
        return self.checkpoints.get(shard_id) == SHARD_END

    def ready(self) -> list[ShardInfo]:
        with self._lock:
            return [
                shard
                for shard_id, shard in sorted(self.shards.items())
                if not self.finished(shard_id)
                and all(self.finished(p) or p not in self.shards for p in shard.parents)
            ]

    def listed(self) -> int:
        return len(self.shards)

    def finish(self, shard_id: str) -> None:
        with self._lock:
            self.checkpoints[shard_id] = SHARD_END

    def retired(self) -> list[str]:
        """Finished shards the stream no longer lists (their checkpoints can go)."""
        with self._lock:
            return [
                k for k, v in self.checkpoints.items() if v == SHARD_END and k not in self.shards
            ]
