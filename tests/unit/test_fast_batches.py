"""Batch requests written and BatchGetItem responses read by tasks.aws.fast_batches are what
botocore itself would send and return."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from tasks.aws import fast_batches, fast_scan
from tests.support import offline_client

ITEMS = [
    {"id": {"S": "plain"}, "n": {"N": "1.50"}, "ok": {"BOOL": True}, "nothing": {"NULL": True}},
    {"id": {"S": "sets"}, "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2E+3"]}},
    {"id": {"S": "binary"}, "b": {"B": b"\x00\xff"}, "bs": {"BS": [b"\x01", b"\x02"]}},
    {
        "id": {"S": "nested"},
        "m": {"M": {"l": {"L": [{"B": b"\x03"}, {"S": "x"}, {"M": {"n": {"N": "0"}}}]}}},
        "empty": {"M": {}},
    },
    {"id": {"S": 'é😀"\\\n'}, "l": {"L": []}},
]
KEYS = [{"id": item["id"]} for item in ITEMS] + [{"id": {"B": b"\x00"}}]


def call(
    operation: str, reply: dict[str, Any], fast: bool, status: int = 200, **params: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the JSON body sent, the parsed response) of one call, with or without the hooks."""
    client = offline_client.client("dynamodb")
    sent: dict[str, Any] = {}
    offline_client.answer(client, operation, reply, status, sent)
    if fast:
        fast_batches.install(client)
    method = getattr(
        client, "batch_get_item" if operation == "BatchGetItem" else "batch_write_item"
    )
    parsed: dict[str, Any] = method(**params)
    parsed.pop("ResponseMetadata")
    return sent, parsed


def both(operation: str, reply: dict[str, Any], **params: Any) -> tuple[Any, Any]:
    fast, plain = call(operation, reply, True, **params), call(operation, reply, False, **params)
    assert fast == plain
    return fast


def _wire(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(fast_batches.wire(item)) for item in items]


def test_batch_write_sends_the_body_botocore_sends() -> None:
    requests = [{"PutRequest": {"Item": item}} for item in ITEMS]
    requests.append({"DeleteRequest": {"Key": {"id": {"B": b"\x00"}}}})
    reply = {"UnprocessedItems": {"t": [{"DeleteRequest": {"Key": {"id": {"B": "AA=="}}}}]}}
    sent, parsed = both("BatchWriteItem", reply, RequestItems={"t": requests})
    assert sent["RequestItems"]["t"][2]["PutRequest"]["Item"]["b"] == {"B": "AP8="}
    assert parsed["UnprocessedItems"]["t"][0]["DeleteRequest"]["Key"] == {"id": {"B": b"\x00"}}


def test_batch_get_sends_and_reads_what_botocore_does() -> None:
    reply = {
        "Responses": {"t": _wire(ITEMS), "u": []},
        "UnprocessedKeys": {"t": {"Keys": [{"id": {"B": "AA=="}}], "ConsistentRead": True}},
    }
    request = {"t": {"Keys": KEYS, "ConsistentRead": True}, "u": {"Keys": KEYS[:1]}}
    sent, parsed = both("BatchGetItem", reply, RequestItems=request)
    assert sent["RequestItems"]["t"]["Keys"][-1] == {"id": {"B": "AA=="}}
    assert parsed["Responses"]["t"] == ITEMS  # binary as bytes, as botocore gives it
    assert parsed["UnprocessedKeys"]["t"]["Keys"] == [{"id": {"B": b"\x00"}}]


def test_the_hooks_are_what_wrote_and_read(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real_body, real_items = fast_batches.request_body, fast_scan.parse_items

    def body(operation: str, items: Any, consumed: str | None = None) -> bytes:
        seen.append(operation if consumed is None else f"{operation} {consumed}")
        return real_body(operation, items, consumed)

    def parse(items: list[Any]) -> list[Any]:
        seen.append(f"parse {len(items)}")
        return real_items(items)

    monkeypatch.setattr(fast_batches, "request_body", body)
    monkeypatch.setattr(fast_batches, "parse_items", parse)
    reply = {"Responses": {"t": _wire(ITEMS)}, "UnprocessedKeys": {}}
    call("BatchGetItem", reply, True, RequestItems={"t": {"Keys": KEYS}})
    assert seen == ["BatchGetItem", f"parse {len(ITEMS)}"]
    seen.clear()  # a bulk job's metered call is written here too
    requests = {"t": [{"PutRequest": {"Item": ITEMS[0]}}]}
    call("BatchWriteItem", {}, True, RequestItems=requests, ReturnConsumedCapacity="TOTAL")
    assert seen == ["BatchWriteItem TOTAL"]


def test_consumed_capacity_is_asked_and_read_as_botocore_does() -> None:
    requests = {"t": [{"PutRequest": {"Item": item}} for item in ITEMS]}
    reply = {"ConsumedCapacity": [{"TableName": "t", "CapacityUnits": 7.0}]}
    sent, parsed = both(
        "BatchWriteItem", reply, RequestItems=requests, ReturnConsumedCapacity="TOTAL"
    )
    assert sent["ReturnConsumedCapacity"] == "TOTAL"
    assert parsed["ConsumedCapacity"] == [{"TableName": "t", "CapacityUnits": 7.0}]


def test_anything_unusual_is_left_to_botocore() -> None:
    # Another parameter: botocore writes the whole request.
    requests = {"t": [{"PutRequest": {"Item": ITEMS[0]}}]}
    both("BatchWriteItem", {}, RequestItems=requests, ReturnItemCollectionMetrics="SIZE")
    # A value that is not typed JSON: botocore's own validation reports it.
    with pytest.raises(ParamValidationError):
        call("BatchWriteItem", {}, True, RequestItems={"t": [{"PutRequest": {"Item": {"a": 1}}}]})
    # A response item of an unknown type is parsed by botocore.
    both(
        "BatchGetItem",
        {"Responses": {"t": [{"id": {"X": "?"}}]}},
        RequestItems={"t": {"Keys": KEYS}},
    )


def test_an_error_response_is_still_an_error() -> None:
    body = {"__type": "com.amazonaws.dynamodb.v20120810#ValidationException", "message": "no"}
    with pytest.raises(ClientError) as raised:
        call("BatchGetItem", body, True, status=400, RequestItems={"t": {"Keys": KEYS}})
    assert raised.value.response["Error"]["Code"] == "ValidationException"
