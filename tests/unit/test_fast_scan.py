"""Scan pages parsed by tasks.aws.fast_scan are exactly what botocore's own parser returns."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tasks.aws import fast_scan
from tests.support import offline_client

ITEMS = [
    {"id": {"S": "plain"}, "n": {"N": "1.50"}, "ok": {"BOOL": True}, "nothing": {"NULL": True}},
    {"id": {"S": "sets"}, "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2E+3"]}},
    {"id": {"S": "binary"}, "b": {"B": "AP8="}, "bs": {"BS": ["AQ==", "Ag=="]}},
    {
        "id": {"S": "nested"},
        "m": {"M": {"l": {"L": [{"B": "Aw=="}, {"S": "x"}, {"M": {"n": {"N": "0"}}}]}}},
        "empty": {"M": {}},
    },
    {"id": {"S": 'é😀"\\\n'}, "l": {"L": []}},
]


def scan(body: dict[str, Any], status: int = 200, fast: bool = True) -> dict[str, Any]:
    """What ``client.scan`` returns for this response body, with or without the hook."""
    client = offline_client.client("dynamodb")
    offline_client.answer(client, "Scan", body, status)
    if fast:
        fast_scan.install(client)
    reply: dict[str, Any] = client.scan(TableName="t")
    reply.pop("ResponseMetadata")
    return reply


def test_a_page_parses_as_botocore_parses_it() -> None:
    body = {
        "Items": ITEMS,
        "Count": len(ITEMS),
        "ScannedCount": len(ITEMS),
        "LastEvaluatedKey": {"id": {"S": "nested"}, "k": {"B": "AP8="}},
        "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 2.5},
    }
    fast = scan(body)
    assert fast == scan(body, fast=False)
    assert fast["Items"][2]["b"] == {"B": b"\x00\xff"}
    assert fast["LastEvaluatedKey"]["k"] == {"B": b"\x00\xff"}


def test_the_hook_is_what_parsed_the_items(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = fast_scan.parse_items

    def spy(items: list[Any]) -> list[Any]:
        seen.append(len(items))
        return real(items)

    monkeypatch.setattr(fast_scan, "parse_items", spy)
    assert len(scan({"Items": ITEMS, "Count": len(ITEMS)})["Items"]) == len(ITEMS)
    assert seen == [len(ITEMS)]


def test_items_without_binary_are_the_json_objects_themselves() -> None:
    items = json.loads(json.dumps(ITEMS[:2]))
    parsed = fast_scan.parse_items(items)
    assert parsed[0] is items[0] and parsed[1] is items[1]


@pytest.mark.parametrize(
    "body",
    [
        {"Count": 0, "ScannedCount": 0},  # no Items at all
        {"Items": [], "Count": 0, "ScannedCount": 0},
        {"Items": [{"id": {"X": "unknown type"}}], "Count": 1},  # left to botocore
    ],
)
def test_unusual_bodies_are_left_to_botocore(body: dict[str, Any]) -> None:
    assert scan(body) == scan(body, fast=False)


def test_an_error_response_is_still_an_error() -> None:
    body = {"__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "message": "no"}
    with pytest.raises(ClientError) as raised:
        scan(body, status=400)
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
