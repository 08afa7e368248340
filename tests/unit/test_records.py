from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from producer.filters import RecordFilter
from producer.records import ChangeRecord, MalformedRecordError, from_dynamodb_stream, from_kinesis
from tasks.core.keys import Key


def test_dynamodb_stream_record_with_binary_key() -> None:
    when = datetime(2026, 1, 2, tzinfo=UTC)
    record = from_dynamodb_stream(
        {
            "eventName": "REMOVE",
            # as the DynamoDB Streams API (boto3) names them; Kinesis's JSON has type/principalId
            "userIdentity": {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"},
            "dynamodb": {
                "Keys": {"h": {"B": b"\x00\x01"}},
                "SequenceNumber": "12",
                "ApproximateCreationDateTime": when,
            },
        }
    )
    key = Key.of({"h": {"B": b"\x00\x01"}})
    assert record == ChangeRecord(key, "REMOVE", when.timestamp(), "12", True)
    assert record.key.item == {"h": {"B": b"\x00\x01"}}


@pytest.mark.parametrize(
    ("stamp", "seconds"), [(1767312000000, 1767312000.0), (1767312000123456, 1767312000.123456)]
)
def test_kinesis_record_times_in_ms_or_us(stamp: int, seconds: float) -> None:
    data = {
        "eventName": "MODIFY",
        "dynamodb": {"ApproximateCreationDateTime": stamp, "Keys": {"h": {"B": "AAE="}}},
    }
    record = from_kinesis({"SequenceNumber": "7", "Data": json.dumps(data).encode()})
    assert record.key.item == {"h": {"B": b"\x00\x01"}} and record.created == pytest.approx(seconds)
    assert not record.ttl_delete


def test_kinesis_keys_only_record_uses_arrival_time() -> None:
    arrival = datetime(2026, 3, 4, tzinfo=UTC)
    record = from_kinesis(
        {
            "SequenceNumber": "8",
            "Data": b'{"Keys":{"id":{"S":"a"}}}',
            "ApproximateArrivalTimestamp": arrival,
        }
    )
    assert record.key.item == {"id": {"S": "a"}} and record.created == arrival.timestamp()


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[]", b'{"dynamodb":{}}', b'{"Keys":{"a":1}}', b'{"Keys":{"a":{"B":"%%%"}}}'],
)
def test_malformed_kinesis_records(data: bytes) -> None:
    with pytest.raises(MalformedRecordError):
        from_kinesis({"SequenceNumber": "9", "Data": data})


def test_record_filter() -> None:
    def rec(created: float, ttl: bool = False) -> ChangeRecord:
        return ChangeRecord({"id": {"S": "a"}}, "REMOVE", created, "1", ttl)

    assert RecordFilter().keep(rec(5, ttl=True))
    assert not RecordFilter(skip_ttl_deletes=True).keep(rec(5, ttl=True))
    assert RecordFilter("before", 10).keep(rec(9.9)) and not RecordFilter("before", 10).keep(
        rec(10)
    )
    assert RecordFilter("after", 10).keep(rec(10)) and not RecordFilter("after", 10).keep(rec(9))
    assert not RecordFilter(not_before=10).keep(rec(9))
