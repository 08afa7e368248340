"""GetRecords pages read by tasks.aws.fast_records are what botocore itself would return."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from producer.records import from_dynamodb_stream, from_kinesis
from tasks.aws import fast_records
from tests.support import offline_client


def get_records(
    service: str, reply: dict[str, Any], fast: bool, status: int = 200
) -> tuple[dict[str, Any], list[str]]:
    """(the parsed response, the hooks that parsed its records) of one GetRecords."""
    client = offline_client.client(service)
    prefix = client.meta.service_model.service_id.hyphenize()
    offline_client.answer(client, "GetRecords", reply, status)
    if fast:
        fast_records.install(client)
        fast_records.install(client)  # twice, as for a cached client: one hook
    took: list[str] = []
    client.meta.events.register(
        f"before-parse.{prefix}.GetRecords",
        lambda customized_response_dict, **_: took.extend(customized_response_dict),
    )
    parsed: dict[str, Any] = client.get_records(ShardIterator="it")
    parsed.pop("ResponseMetadata")
    return parsed, took


def same(service: str, reply: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    fast, took = get_records(service, reply, True)
    plain, _ = get_records(service, reply, False)
    assert fast == plain
    return fast, took


def _data(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


KINESIS = {
    "Records": [
        {
            "SequenceNumber": "4959",
            "ApproximateArrivalTimestamp": 1764500000.123,
            "Data": _data({"eventName": "MODIFY", "dynamodb": {"Keys": {"id": {"S": "a"}}}}),
            "PartitionKey": "A1",
            "EncryptionType": "NONE",
        },
        {
            "SequenceNumber": "4960",
            "ApproximateArrivalTimestamp": 1764500001,
            "Data": _data({"dynamodb": {"Keys": {"id": {"B": "AP8="}}}}),
            "PartitionKey": "B2",
        },
    ],
    "NextShardIterator": "next",
    "MillisBehindLatest": 1500,
    "ChildShards": [
        {"ShardId": "s-2", "ParentShards": ["s-1"], "HashKeyRange": {"StartingHashKey": "0"}}
    ],
}

STREAMS = {
    "Records": [
        {
            "eventID": "e1",
            "eventName": "REMOVE",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1764500000,
                "Keys": {"id": {"S": "plain"}, "n": {"N": "1.50"}},
                "OldImage": {
                    "id": {"S": "plain"},
                    "n": {"N": "1.50"},
                    "b": {"B": "AP8="},
                    "bs": {"BS": ["AQ==", "Ag=="]},
                    "m": {"M": {"l": {"L": [{"B": "Aw=="}, {"S": "x"}, {"NULL": True}]}}},
                },
                "SequenceNumber": "111",
                "SizeBytes": 42,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
            "userIdentity": {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"},
        },
        {
            "eventID": "e2",
            "eventName": "INSERT",
            "dynamodb": {
                "ApproximateCreationDateTime": 1764500001.5,
                "Keys": {"id": {"B": "AA=="}},
                "NewImage": {"id": {"B": "AA=="}, "s": {"SS": ["a", "é😀"]}},
                "SequenceNumber": "112",
                "SizeBytes": 9,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
        },
        {"eventID": "e3", "eventName": "MODIFY", "dynamodb": {"Keys": {"id": {"S": "k"}}}},
    ],
    "NextShardIterator": "next",
}


def test_kinesis_records_are_what_botocore_returns() -> None:
    parsed, took = same("kinesis", KINESIS)
    assert took == ["Records"]  # the records were read by the hook, not by botocore
    assert parsed["Records"][1]["Data"] == b'{"dynamodb": {"Keys": {"id": {"B": "AP8="}}}}'
    assert parsed["MillisBehindLatest"] == 1500 and parsed["ChildShards"][0]["ShardId"] == "s-2"
    change = from_kinesis(parsed["Records"][0])
    assert change.key.canonical == '{"id":{"S":"a"}}' and change.created == 1764500000.123


def test_dynamodb_stream_records_are_what_botocore_returns() -> None:
    parsed, took = same("dynamodbstreams", STREAMS)
    assert took == ["Records"]
    first, second = (from_dynamodb_stream(r) for r in parsed["Records"][:2])
    assert first.ttl_delete and first.created == 1764500000
    assert second.key.item == {"id": {"B": b"\x00"}} and second.created == 1764500001.5


@pytest.mark.parametrize(
    ("service", "reply"),
    [
        ("kinesis", {"Records": [{"SequenceNumber": "1", "Data": "not base64!"}]}),
        ("kinesis", {"Records": [{"SequenceNumber": "1", "Data": "", "Approx": "x"}]}),
        ("kinesis", {"Records": "not a list"}),
        ("dynamodbstreams", {"Records": [{"dynamodb": {"Keys": {"id": {"X": "?"}}}}]}),
        ("dynamodbstreams", {"Records": [{"dynamodb": {"ApproximateCreationDateTime": "x"}}]}),
    ],
)
def test_anything_unusual_is_left_to_botocore(service: str, reply: dict[str, Any]) -> None:
    fast_error = plain_error = None
    try:
        fast, took = get_records(service, reply, True)
    except Exception as exc:  # botocore's own verdict, whatever it is, must be the same
        fast_error, took = type(exc), []
    try:
        plain, _ = get_records(service, reply, False)
    except Exception as exc:
        plain_error = type(exc)
    assert took == [] and fast_error == plain_error
    if fast_error is None:
        assert fast == plain


def test_an_error_response_is_still_an_error() -> None:
    body = {"__type": "ExpiredIteratorException", "message": "expired"}
    with pytest.raises(ClientError) as raised:
        get_records("kinesis", body, True, status=400)
    assert raised.value.response["Error"]["Code"] == "ExpiredIteratorException"


def test_other_clients_are_left_alone() -> None:
    client = boto3.client("s3", region_name="us-east-1")
    fast_records.install(client)  # no GetRecords: nothing registered, nothing raised
    fast_records.install(object())  # a stand-in without botocore's events
