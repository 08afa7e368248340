"""Change-stream sources: one adapter per service, all with the same small interface.

A source lists its shards (with their parents), hands out shard iterators for a position, reads
pages of raw records and parses a raw record into a ``ChangeRecord``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from producer.records import ChangeRecord

SHARD_END = "SHARD_END"


@dataclass(frozen=True)
class ShardInfo:
    shard_id: str
    parents: tuple[str, ...] = ()
    ending_sequence: str | None = None  # set once the shard is closed

    @property
    def closed(self) -> bool:
        return self.ending_sequence is not None


@dataclass(frozen=True)
class Position:
    """Where to start reading a shard: TRIM_HORIZON, LATEST, AFTER_SEQUENCE_NUMBER, AT_TIMESTAMP."""

    kind: str
    sequence: str | None = None
    timestamp: float | None = None


@dataclass
class Page:
    records: list[Mapping[str, Any]] = field(default_factory=list)
    next_iterator: str | None = None
    behind_ms: int | None = None  # what the service says (Kinesis); None when unknown
    last_sequence: str | None = None  # of the page's last record, parsable or not


class Source(Protocol):
    stream_id: str
    supports_timestamp: bool
    retention_seconds: float  # how long the service keeps a record

    def shards(self) -> list[ShardInfo]: ...

    def iterator(self, shard_id: str, position: Position) -> str: ...

    def read(self, iterator: str, limit: int) -> Page: ...

    def parse(self, raw: Mapping[str, Any]) -> ChangeRecord: ...


def sequence_at_least(sequence: str | None, other: str) -> bool:
    """Compare sequence numbers (decimal strings of any length)."""
    if sequence is None:
        return False
    return int(sequence) >= int(other)
