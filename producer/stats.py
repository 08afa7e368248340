"""What the producer has done so far, for the periodic status line, the metrics and the status.

Shard readers run in threads: counters change through ``add`` (under a lock), and each shard's
``ShardStatus`` is written by the one thread reading that shard at a time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

COUNTERS = (
    "records_read",
    "records_filtered",
    "records_malformed",
    "keys_enqueued",
    "keys_coalesced",
    "gaps",
    "shards_finished",
    "leases_taken",
    "leases_released",
    "leases_lost",
    "checkpoints_refused",
)


@dataclass
class ShardStatus:
    """How reading one shard goes."""

    lag: float = 0.0  # seconds from the newest change read to now (0 at the tip)
    iterator_age: float = 0.0  # MillisBehindLatest (Kinesis) or the record age (DynamoDB Streams)
    progress_at: float = field(default_factory=time.time)  # checkpoint advanced, or at the tip
    pages: int = 0  # pages read since this producer took the shard

    def stalled(self, now: float | None = None) -> float:
        """Seconds since the shard last made progress (checkpoint moved, or at its tip)."""
        return max(0.0, (now or time.time()) - self.progress_at)


@dataclass
class ProducerStats:
    records_read: int = 0
    records_filtered: int = 0
    records_malformed: int = 0
    keys_enqueued: int = 0
    keys_coalesced: int = 0
    gaps: int = 0
    shards_finished: int = 0
    leases_taken: int = 0
    leases_released: int = 0
    leases_lost: int = 0
    checkpoints_refused: int = 0
    shards: dict[str, ShardStatus] = field(default_factory=dict)  # the shards being read
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    @property
    def lag_seconds(self) -> dict[str, float]:
        return {shard: status.lag for shard, status in list(self.shards.items())}

    def summary(self) -> dict[str, object]:
        lags = self.lag_seconds
        return {
            **{name: getattr(self, name) for name in COUNTERS},
            "active_shards": len(lags),
            "lag_seconds": round(max(lags.values(), default=0.0), 3),
        }
