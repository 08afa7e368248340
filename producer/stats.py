"""What the producer has done so far, for the periodic status line and the metrics."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ProducerStats:
    records_read: int = 0
    records_filtered: int = 0
    records_malformed: int = 0
    keys_enqueued: int = 0
    keys_coalesced: int = 0
    gaps: int = 0
    shards_finished: int = 0
    lag_seconds: dict[str, float] = field(default_factory=dict)  # per shard

    def summary(self) -> dict[str, object]:
        return {
            "records_read": self.records_read,
            "records_filtered": self.records_filtered,
            "records_malformed": self.records_malformed,
            "keys_enqueued": self.keys_enqueued,
            "keys_coalesced": self.keys_coalesced,
            "gaps": self.gaps,
            "shards_finished": self.shards_finished,
            "active_shards": len(self.lag_seconds),
            "lag_seconds": round(max(self.lag_seconds.values(), default=0.0), 3),
        }
