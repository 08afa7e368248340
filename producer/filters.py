"""Which change records to act on: turnover (cut-over time), TTL deletes, a start time."""

from __future__ import annotations

from dataclasses import dataclass

from producer.records import ChangeRecord


@dataclass(frozen=True)
class RecordFilter:
    turnover_role: str | None = None  # "before": keep records created before turnover_at
    turnover_at: float | None = None  #  "after": keep records created at or after it
    skip_ttl_deletes: bool = False
    not_before: float | None = None  # start time for sources without AT_TIMESTAMP

    def keep(self, record: ChangeRecord) -> bool:
        if self.skip_ttl_deletes and record.ttl_delete:
            return False
        if self.not_before is not None and record.created < self.not_before:
            return False
        if self.turnover_role == "before" and self.turnover_at is not None:
            return record.created < self.turnover_at
        if self.turnover_role == "after" and self.turnover_at is not None:
            return record.created >= self.turnover_at
        return True
