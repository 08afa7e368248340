"""A table's whole definition, read from one table and created again as another (migrate).

``Definition`` holds what ``replicator migrate --create`` copies: key schema and the attribute
definitions the indexes need, billing mode and provisioned capacity, global and local secondary
indexes, the table class, the TTL attribute, server-side encryption with a customer key, tags,
and (when asked) the stream setting. Sizes (item count, bytes) come along for the backfill
estimate. Data access stays in ``tasks.aws.dynamo``; this module only describes and creates.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tasks.aws import clients
from tasks.aws.errors import translated
from tasks.core.errors import NotFoundError, TransientError
from tasks.core.locations import Table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ACTIVE_WAIT_SECONDS = 1800
"""How long ``create_like`` waits for the new table and its indexes to become ACTIVE."""


@dataclass(frozen=True)
class Capacity:
    read: int
    write: int

    @classmethod
    def of(cls, raw: Mapping[str, Any] | None) -> Capacity | None:
        if not raw or not raw.get("ReadCapacityUnits"):
            return None
        return cls(int(raw["ReadCapacityUnits"]), int(raw["WriteCapacityUnits"]))

    def request(self) -> dict[str, int]:
        return {"ReadCapacityUnits": self.read, "WriteCapacityUnits": self.write}


@dataclass(frozen=True)
class Definition:
    name: str
    key_schema: list[dict[str, str]]
    attributes: list[dict[str, str]]
    capacity: Capacity | None  # None: on demand (PAY_PER_REQUEST)
    global_indexes: list[dict[str, Any]] = field(default_factory=list)
    local_indexes: list[dict[str, Any]] = field(default_factory=list)
    stream_view_type: str | None = None
    ttl_attribute: str | None = None
    kms_key: str | None = None
    table_class: str | None = None
    tags: list[dict[str, str]] = field(default_factory=list)
    item_count: int = 0
    size_bytes: int = 0

    @property
    def on_demand(self) -> bool:
        return self.capacity is None

    @property
    def average_item_bytes(self) -> float:
        return self.size_bytes / self.item_count if self.item_count else 0.0


def _client(table: Table) -> DynamoDBClient:
    return clients.dynamodb(table)


def describe(table: Table) -> Definition:
    """Everything ``create_like`` copies; NotFoundError if the table does not exist."""
    client = _client(table)
    try:
        with translated(f"table {table}"):
            raw: Any = client.describe_table(TableName=table.name)["Table"]
    except NotFoundError as exc:
        raise NotFoundError(f"table {table} does not exist") from exc
    with translated(f"table {table}"):
        ttl = client.describe_time_to_live(TableName=table.name)["TimeToLiveDescription"]
        tags = _tags(client, raw["TableArn"])
    billing = (raw.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    stream = raw.get("StreamSpecification") or {}
    sse = raw.get("SSEDescription") or {}
    return Definition(
        name=table.name,
        key_schema=[dict(k) for k in raw["KeySchema"]],
        attributes=[dict(a) for a in raw["AttributeDefinitions"]],
        capacity=None
        if billing == "PAY_PER_REQUEST"
        else Capacity.of(raw.get("ProvisionedThroughput")),
        global_indexes=[_index(i, billing) for i in raw.get("GlobalSecondaryIndexes", [])],
        local_indexes=[_index(i, None) for i in raw.get("LocalSecondaryIndexes", [])],
        stream_view_type=stream.get("StreamViewType") if stream.get("StreamEnabled") else None,
        ttl_attribute=(
            ttl.get("AttributeName")
            if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
            else None
        ),
        kms_key=sse.get("KMSMasterKeyArn") if sse.get("SSEType") == "KMS" else None,
        table_class=(raw.get("TableClassSummary") or {}).get("TableClass"),
        tags=tags,
        item_count=int(raw.get("ItemCount", 0)),
        size_bytes=int(raw.get("TableSizeBytes", 0)),
    )


def exists(table: Table) -> bool:
    try:
        with translated(f"table {table}"):
            _client(table).describe_table(TableName=table.name)
    except NotFoundError:
        return False
    return True


def _tags(client: DynamoDBClient, arn: str) -> list[dict[str, str]]:
    tags: list[dict[str, str]] = []
    kwargs: dict[str, str] = {"ResourceArn": arn}
    while True:
        page = client.list_tags_of_resource(**kwargs)
        tags.extend({"Key": t["Key"], "Value": t["Value"]} for t in page.get("Tags", []))
        if not page.get("NextToken"):
            return tags
        kwargs["NextToken"] = page["NextToken"]


def _index(raw: Mapping[str, Any], billing: str | None) -> dict[str, Any]:
    """An index as CreateTable takes it (the described one carries status, sizes, ARNs)."""
    index: dict[str, Any] = {
        "IndexName": raw["IndexName"],
        "KeySchema": [dict(k) for k in raw["KeySchema"]],
        "Projection": dict(raw["Projection"]),
    }
    capacity = Capacity.of(raw.get("ProvisionedThroughput"))
    if billing == "PROVISIONED" and capacity is not None:
        index["ProvisionedThroughput"] = capacity.request()
    return index


def create_like(target: Table, source: Definition, *, with_stream: bool) -> None:
    """Create ``target`` with ``source``'s definition; wait until it and its indexes are ACTIVE,
    then set its TTL attribute."""
    client = _client(target)
    request: dict[str, Any] = {
        "TableName": target.name,
        "KeySchema": source.key_schema,
        "AttributeDefinitions": source.attributes,
    }
    if source.capacity is None:
        request["BillingMode"] = "PAY_PER_REQUEST"
    else:
        request["BillingMode"] = "PROVISIONED"
        request["ProvisionedThroughput"] = source.capacity.request()
    if source.global_indexes:
        request["GlobalSecondaryIndexes"] = source.global_indexes
    if source.local_indexes:
        request["LocalSecondaryIndexes"] = source.local_indexes
    if with_stream and source.stream_view_type:
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": source.stream_view_type,
        }
    if source.kms_key:
        request["SSESpecification"] = {
            "Enabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": source.kms_key,
        }
    if source.table_class:
        request["TableClass"] = source.table_class
    if source.tags:
        request["Tags"] = source.tags
    with translated(f"CreateTable {target}"):
        client.create_table(**request)
    wait_active(target)
    if source.ttl_attribute:
        with translated(f"UpdateTimeToLive {target}"):
            client.update_time_to_live(
                TableName=target.name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": source.ttl_attribute},
            )


def wait_active(table: Table, timeout: float = ACTIVE_WAIT_SECONDS) -> None:
    """Until the table and every global index are ACTIVE; TransientError after ``timeout``."""
    client = _client(table)
    deadline = time.monotonic() + timeout
    while True:
        with translated(f"table {table}"):
            raw = client.describe_table(TableName=table.name)["Table"]
        statuses = [raw["TableStatus"]]
        statuses += [i.get("IndexStatus", "ACTIVE") for i in raw.get("GlobalSecondaryIndexes", [])]
        if all(s == "ACTIVE" for s in statuses):
            return
        if time.monotonic() > deadline:
            raise TransientError(f"table {table} not ACTIVE after {timeout:.0f} s: {statuses}")
        time.sleep(1.0)
