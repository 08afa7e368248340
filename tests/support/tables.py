"""Creating tables and comparing them in tests (over moto's HTTP endpoint)."""

from __future__ import annotations

from typing import Any

import boto3

from tasks.core.config import settings
from tasks.core.locations import PRIMARY, Table
from tasks.core.typed_json import canonical_json, normalized


def client(endpoint: str, service: str = "dynamodb") -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def create_table(
    endpoint: str,
    name: str,
    hash_key: tuple[str, str] = ("id", "S"),
    range_key: tuple[str, str] | None = None,
    stream: str | None = None,
) -> dict[str, Any]:
    ddb = client(endpoint)
    keys = [{"AttributeName": hash_key[0], "KeyType": "HASH"}]
    attrs = [{"AttributeName": hash_key[0], "AttributeType": hash_key[1]}]
    if range_key:
        keys.append({"AttributeName": range_key[0], "KeyType": "RANGE"})
        attrs.append({"AttributeName": range_key[0], "AttributeType": range_key[1]})
    extra: dict[str, Any] = {}
    if stream:
        extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream}
    return ddb.create_table(
        TableName=name,
        KeySchema=keys,
        AttributeDefinitions=attrs,
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )["TableDescription"]


def scan_all(endpoint: str, name: str) -> dict[str, dict[str, Any]]:
    """Every item of a table, by canonical key JSON."""
    ddb = client(endpoint)
    schema = ddb.describe_table(TableName=name)["Table"]["KeySchema"]
    names = [k["AttributeName"] for k in schema]
    items: dict[str, dict[str, Any]] = {}
    for page in ddb.get_paginator("scan").paginate(TableName=name, ConsistentRead=True):
        for item in page["Items"]:
            items[canonical_json({n: item[n] for n in names})] = item
    return items


def normalized_table(endpoint: str, name: str) -> dict[str, Any]:
    return {
        k: {a: normalized(v) for a, v in item.items()}
        for k, item in scan_all(endpoint, name).items()
    }


def stream_record_count(endpoint: str, name: str) -> int:
    """How many records the table's stream holds (read from the trim horizon)."""
    arn = client(endpoint).describe_table(TableName=name)["Table"]["LatestStreamArn"]
    streams = client(endpoint, "dynamodbstreams")
    total = 0
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            total += len(page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return total


def table(text: str, side: str = PRIMARY) -> Table:
    """A table handle, parsed with this process's settings (as every command does)."""
    return settings().table(text, side)
