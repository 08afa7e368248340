"""A small fake of the DynamoDB Streams client whose shards split and close.

moto's DynamoDB stream has one shard that never splits, so shard lineage, expired iterators
and trimmed data are tested against this fake (and against moto's Kinesis resharding).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "GetRecords")


@dataclass
class FakeShard:
    shard_id: str
    parent: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    trimmed_before: int = 0  # sequence numbers below this are gone


@dataclass
class FakeStreams:
    arn: str = "arn:aws:dynamodb:us-east-1:1:table/primary/stream/fake"
    shards: dict[str, FakeShard] = field(default_factory=dict)
    next_sequence: int = 100
    expire_next_reads: int = 0
    fail_next_calls: int = 0  # answer the next calls with a 500
    failing_shards: set[str] = field(default_factory=set)  # GetRecords on these answers 500
    throttle_next_describes: int = 0  # answer the next DescribeStream calls LimitExceeded
    describes: int = 0  # DescribeStream calls answered (throttled or not)
    lock: threading.Lock = field(default_factory=threading.Lock)
    reads: list[str] = field(default_factory=list)  # shard of every GetRecords

    def add_shard(self, shard_id: str, parent: str | None = None) -> None:
        with self.lock:
            self.shards[shard_id] = FakeShard(shard_id, parent)

    def put(self, shard_id: str, key: str, record: dict[str, Any] | None = None) -> str:
        with self.lock:
            self.next_sequence += 1
            seq = str(self.next_sequence)
            raw = record or {
                "eventName": "MODIFY",
                "dynamodb": {
                    "Keys": {"id": {"S": key}},
                    "ApproximateCreationDateTime": datetime.now(UTC),
                },
            }
            raw.setdefault("dynamodb", {})["SequenceNumber"] = seq
            self.shards[shard_id].records.append(raw)
            return seq

    def close(self, shard_id: str) -> None:
        with self.lock:
            self.shards[shard_id].closed = True

    # -- the client's interface ---------------------------------------------------------------

    def describe_stream(
        self, StreamArn: str, ExclusiveStartShardId: str | None = None, **_: Any
    ) -> dict[str, Any]:
        with self.lock:
            self.describes += 1
            if self.throttle_next_describes:
                self.throttle_next_describes -= 1
                raise ClientError(
                    {"Error": {"Code": "LimitExceededException", "Message": "slow down"}},
                    "DescribeStream",
                )
            ids = sorted(self.shards)
            if ExclusiveStartShardId:
                ids = [i for i in ids if i > ExclusiveStartShardId]
            page, rest = ids[:2], ids[2:]
            shards = [self._describe(self.shards[i]) for i in page]
        body: dict[str, Any] = {"StreamArn": StreamArn, "Shards": shards}
        if rest:
            body["LastEvaluatedShardId"] = page[-1]
        return {"StreamDescription": body}

    def _describe(self, shard: FakeShard) -> dict[str, Any]:
        numbers: dict[str, str] = {"StartingSequenceNumber": "0"}
        if shard.closed:
            last = shard.records[-1]["dynamodb"]["SequenceNumber"] if shard.records else "0"
            numbers["EndingSequenceNumber"] = last
        described: dict[str, Any] = {"ShardId": shard.shard_id, "SequenceNumberRange": numbers}
        if shard.parent:
            described["ParentShardId"] = shard.parent
        return described

    def get_shard_iterator(
        self,
        StreamArn: str,
        ShardId: str,
        ShardIteratorType: str,
        SequenceNumber: str | None = None,
    ) -> dict[str, str]:
        shard = self.shards[ShardId]
        if ShardIteratorType == "TRIM_HORIZON":
            position = 0
        elif ShardIteratorType == "LATEST":
            position = len(shard.records)
        else:
            if int(SequenceNumber or 0) < shard.trimmed_before:
                raise _error("TrimmedDataAccessException")
            position = sum(
                1
                for r in shard.records
                if int(r["dynamodb"]["SequenceNumber"]) <= int(SequenceNumber or 0)
            )
        return {"ShardIterator": f"{ShardId}|{position}"}

    def _maybe_fail(self, shard_id: str = "") -> None:
        with self.lock:
            if self.fail_next_calls or shard_id in self.failing_shards:
                self.fail_next_calls = max(0, self.fail_next_calls - 1)
                raise ClientError(
                    {
                        "Error": {"Code": "InternalServerError", "Message": "x"},
                        "ResponseMetadata": {"HTTPStatusCode": 500},
                    },
                    "Call",
                )

    def get_records(self, ShardIterator: str, Limit: int = 1000) -> dict[str, Any]:
        self._maybe_fail(ShardIterator.split("|", maxsplit=1)[0])
        with self.lock:
            if self.expire_next_reads:
                self.expire_next_reads -= 1
                raise _error("ExpiredIteratorException")
            shard_id, position = ShardIterator.split("|")
            shard = self.shards[shard_id]
            start = int(position)
            records = shard.records[start : start + min(Limit, 3)]
            self.reads.append(shard_id)
            end = start + len(records)
            at_end = end >= len(shard.records)
        response: dict[str, Any] = {"Records": records}
        if not (shard.closed and at_end):
            response["NextShardIterator"] = f"{shard_id}|{end}"
        return response


@dataclass
class RecordingApp:
    """Stands in for the Celery app: records what would be sent."""

    sent: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    fail_next: int = 0

    def send_task(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("broker down")
        self.sent.append((name, args, kwargs))

    def sent_keys(self) -> list[str]:
        return [k["id"]["S"] for _, args, _ in self.sent for k in args[2]]
