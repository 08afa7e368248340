"""DynamoDB Streams: the table's own change stream."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from producer.records import ChangeRecord, from_dynamodb_stream
from producer.sources import Page, Position, ShardInfo
from tasks.aws import clients, dynamo, fast_records
from tasks.aws.errors import translated
from tasks.core.errors import NotFoundError
from tasks.core.locations import Table


def stream_arn_of(table: Table) -> str:
    """The table's latest stream ARN; NotFoundError when no stream is enabled."""
    info = dynamo.describe(table)
    if not info.stream_arn:
        raise NotFoundError(
            f"table {table} has no stream enabled: enable DynamoDB Streams on it "
            "(any view type; KEYS_ONLY is enough) or pass --kinesis-stream"
        )
    return info.stream_arn


class DynamoDBStreamsSource:
    supports_timestamp = False
    retention_seconds = 24 * 3600.0  # fixed by the service

    def __init__(self, table: Table, stream_arn: str | None = None, client: Any = None):
        self.stream_id = stream_arn or stream_arn_of(table)
        self._client = client or clients.dynamodbstreams(table)
        fast_records.install(self._client)

    def shards(self) -> list[ShardInfo]:
        found: list[ShardInfo] = []
        args: dict[str, Any] = {"StreamArn": self.stream_id, "Limit": 100}
        while True:
            with translated(f"DescribeStream {self.stream_id}"):
                description = self._client.describe_stream(**args)["StreamDescription"]
            for shard in description.get("Shards", []):
                parent = shard.get("ParentShardId")
                found.append(
                    ShardInfo(
                        shard_id=shard["ShardId"],
                        parents=(parent,) if parent else (),
                        ending_sequence=shard.get("SequenceNumberRange", {}).get(
                            "EndingSequenceNumber"
                        ),
                    )
                )
            last = description.get("LastEvaluatedShardId")
            if not last:
                return found
            args["ExclusiveStartShardId"] = last

    def iterator(self, shard_id: str, position: Position) -> str:
        args: dict[str, Any] = {
            "StreamArn": self.stream_id,
            "ShardId": shard_id,
            "ShardIteratorType": position.kind,
        }
        if position.sequence is not None:
            args["SequenceNumber"] = position.sequence
        with translated(f"GetShardIterator {shard_id}"):
            return str(self._client.get_shard_iterator(**args)["ShardIterator"])

    def read(self, iterator: str, limit: int) -> Page:
        with translated(f"GetRecords on {self.stream_id}"):
            response = self._client.get_records(ShardIterator=iterator, Limit=limit)
        records: list[Mapping[str, Any]] = list(response.get("Records", []))
        last = str(records[-1].get("dynamodb", {}).get("SequenceNumber", "")) if records else None
        return Page(
            records=records,
            next_iterator=response.get("NextShardIterator"),
            last_sequence=last or None,
        )

    def parse(self, raw: Mapping[str, Any]) -> ChangeRecord:
        return from_dynamodb_stream(raw)
