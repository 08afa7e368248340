"""Kinesis Data Streams carrying DynamoDB change records ("Kinesis Data Streams for DynamoDB")."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from producer.records import ChangeRecord, from_kinesis
from producer.sources import Page, Position, ShardInfo
from tasks.aws import clients, fast_records
from tasks.aws.errors import translated
from tasks.core.errors import NotFoundError
from tasks.core.locations import Table


class KinesisSource:
    supports_timestamp = True
    retention_seconds = 24 * 3600.0  # the default; the stream's own is read at start

    def __init__(self, table: Table, stream: str, client: Any = None):
        self._client = client or clients.kinesis(table)
        fast_records.install(self._client)
        self._ref = {"StreamARN": stream} if stream.startswith("arn:") else {"StreamName": stream}
        self.stream_id = stream
        try:
            with translated(f"Kinesis stream {stream}"):
                summary = self._client.describe_stream_summary(**self._ref)
        except NotFoundError as exc:
            raise NotFoundError(f"Kinesis stream {stream} does not exist") from exc
        hours = summary.get("StreamDescriptionSummary", {}).get("RetentionPeriodHours")
        if hours:
            self.retention_seconds = float(hours) * 3600

    def shards(self) -> list[ShardInfo]:
        found: list[ShardInfo] = []
        args: dict[str, Any] = dict(self._ref)
        while True:
            with translated(f"ListShards {self.stream_id}"):
                response = self._client.list_shards(**args)
            for shard in response.get("Shards", []):
                parents = tuple(
                    p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p
                )
                found.append(
                    ShardInfo(
                        shard_id=shard["ShardId"],
                        parents=parents,
                        ending_sequence=shard.get("SequenceNumberRange", {}).get(
                            "EndingSequenceNumber"
                        ),
                    )
                )
            token = response.get("NextToken")
            if not token:
                return found
            args = {"NextToken": token}

    def iterator(self, shard_id: str, position: Position) -> str:
        args: dict[str, Any] = {
            **self._ref,
            "ShardId": shard_id,
            "ShardIteratorType": position.kind,
        }
        if position.sequence is not None:
            args["StartingSequenceNumber"] = position.sequence
        if position.timestamp is not None:
            args["Timestamp"] = datetime.fromtimestamp(position.timestamp, UTC)
        with translated(f"GetShardIterator {shard_id}"):
            return str(self._client.get_shard_iterator(**args)["ShardIterator"])

    def read(self, iterator: str, limit: int) -> Page:
        with translated(f"GetRecords on {self.stream_id}"):
            response = self._client.get_records(ShardIterator=iterator, Limit=limit)
        records: list[Mapping[str, Any]] = list(response.get("Records", []))
        return Page(
            records=records,
            next_iterator=response.get("NextShardIterator"),
            behind_ms=response.get("MillisBehindLatest"),
            last_sequence=str(records[-1]["SequenceNumber"]) if records else None,
        )

    def parse(self, raw: Mapping[str, Any]) -> ChangeRecord:
        return from_kinesis(raw)
