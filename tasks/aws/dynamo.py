"""DynamoDB access: the only module that calls boto3 for tables.

Reads go out as BatchGetItem (at most 100 keys, strongly consistent when asked) and writes as
BatchWriteItem (at most 25 requests, one per key). UnprocessedKeys / UnprocessedItems and
transient failures of a whole request are retried with capped, jittered exponential backoff;
botocore itself retries throttling per request first (standard retry mode). A key that still
fails is returned with its reason, never dropped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from tasks.aws import clients, fast_scan
from tasks.aws.errors import THROTTLING_CODES, translated
from tasks.coord import stats
from tasks.core.backoff import delay
from tasks.core.config import settings
from tasks.core.errors import (
    InvalidInputError,
    NotFoundError,
    PermanentError,
    SchemaMismatchError,
    TransientError,
)
from tasks.core.locations import TableLocation
from tasks.core.typed_json import Item, KeyAttribute, KeySchema, canonical_json

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

READ_BATCH = 100
WRITE_BATCH = 25


@dataclass(frozen=True)
class TableInfo:
    location: TableLocation
    schema: KeySchema
    stream_arn: str | None
    stream_view_type: str | None


@dataclass(frozen=True)
class Failure:
    """Why a key could not be read or written, and whether trying again later may help."""

    reason: str
    retryable: bool = True


@dataclass
class BatchResult:
    """Per-key outcome of a batch: items found (by canonical key) and keys that failed."""

    found: dict[str, Item]
    failed: dict[str, Failure]
    requests: int = 0


def describe(location: TableLocation, side: str) -> TableInfo:
    """The table's key schema and stream, read once per process and cached."""
    return _describe(location, side)


@lru_cache(maxsize=128)
def _describe(location: TableLocation, side: str) -> TableInfo:
    client = _client(location, side)
    try:
        with translated(f"table {location}"):
            table = client.describe_table(TableName=location.table)["Table"]
    except NotFoundError as exc:
        raise NotFoundError(f"table {location} does not exist") from exc
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    parts = {
        k["KeyType"]: KeyAttribute(k["AttributeName"], types[k["AttributeName"]])
        for k in table["KeySchema"]
    }
    stream: Mapping[str, Any] = table.get("StreamSpecification") or {}
    return TableInfo(
        location=location,
        schema=KeySchema(hash_key=parts["HASH"], range_key=parts.get("RANGE")),
        stream_arn=table.get("LatestStreamArn") if stream.get("StreamEnabled") else None,
        stream_view_type=stream.get("StreamViewType"),
    )


def schema(location: TableLocation, side: str) -> KeySchema:
    return describe(location, side).schema


def same_schema(primary: TableLocation, replica: TableLocation) -> KeySchema:
    """The shared key schema of two tables; SchemaMismatchError if they differ."""
    expected = schema(primary, "primary")
    require_schema(replica, "replica", expected, str(primary))
    return expected


def require_schema(location: TableLocation, side: str, expected: KeySchema, other: str) -> None:
    """SchemaMismatchError unless ``location``'s key schema is ``expected`` (that of ``other``)."""
    actual = schema(location, side)
    if actual != expected:
        raise SchemaMismatchError(
            f"key schemas differ: {other} has {expected.describe()}, "
            f"{location} has {actual.describe()}"
        )


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def _client(location: TableLocation, side: str) -> DynamoDBClient:
    """The side's client, watched for throttling (every throttled attempt, botocore's retries
    included, is counted for the metrics by ``stats.note_throttle``), its Scan pages parsed by
    ``fast_scan``."""
    client = clients.dynamodb(location, side)
    if not getattr(client, "_replicator_watched", False):
        endpoint = location.endpoint_url

        def watch(response: Any = None, request_dict: Any = None, **_: Any) -> None:
            code = response[1].get("Error", {}).get("Code") if response is not None else None
            if code in THROTTLING_CODES:
                table = _table_of(request_dict or {}, endpoint, location.region)
                stats.note_throttle(table, side)

        client.meta.events.register("needs-retry.dynamodb", watch)
        fast_scan.install(client)
        setattr(client, "_replicator_watched", True)  # noqa: B010 - a plain flag on the client
    return client


def _table_of(request: Mapping[str, Any], endpoint: str | None, region: str) -> str:
    """The table location a DynamoDB request names (TableName or RequestItems)."""
    try:
        body = json.loads(request.get("body") or b"{}")
    except ValueError:
        body = {}
    name = body.get("TableName") or next(iter(body.get("RequestItems") or {}), "?")
    return str(TableLocation(name, region, endpoint))


def _pause(attempt: int) -> None:
    cfg = settings()
    time.sleep(delay(attempt, cfg.backoff_base, cfg.backoff_cap))


# -- reads -------------------------------------------------------------------------------------


def batch_get(
    location: TableLocation, side: str, keys: Sequence[Item], consistent: bool = True
) -> BatchResult:
    """Fetch many keys; ``found`` holds the items that exist, ``failed`` keys we could not read."""
    result = BatchResult(found={}, failed={})
    for chunk in _chunks(keys, READ_BATCH):
        _get_chunk(location, side, list(chunk), consistent, result)
    return result


def _get_chunk(
    location: TableLocation, side: str, keys: list[Item], consistent: bool, result: BatchResult
) -> None:
    client = _client(location, side)
    names = schema(location, side).names

    def send(pending: list[Item]) -> list[Item]:
        request: Any = {location.table: {"Keys": pending, "ConsistentRead": consistent}}
        response = client.batch_get_item(RequestItems=request)
        result.requests += 1
        for item in response.get("Responses", {}).get(location.table, []):
            result.found[canonical_json({n: item[n] for n in names})] = item
        unprocessed: Any = response.get("UnprocessedKeys") or {}
        return list(unprocessed.get(location.table, {}).get("Keys", []))

    left, reason, rejected = _until_processed(location, side, "BatchGetItem", keys, send)
    if rejected:
        _get_one_by_one(location, side, left, consistent, result)
        return
    for key in left:
        result.failed[canonical_json(key)] = Failure(reason)


def _until_processed(
    location: TableLocation,
    side: str,
    operation: str,
    pending: list[Any],
    send: Callable[[list[Any]], list[Any]],
) -> tuple[list[Any], str, bool]:
    """Send a batch until nothing is left unprocessed, with capped, jittered backoff.

    ``send(pending)`` makes one request and returns what came back unprocessed. Returns what is
    still left, why, and whether the service rejected the request outright (then the caller
    finds the key at fault one by one).
    """
    reason = ""
    for attempt in range(settings().batch_max_attempts):
        if attempt:
            _pause(attempt - 1)
        try:
            with translated(f"{operation} on {location}"):
                pending = send(pending)
        except TransientError as exc:
            reason = str(exc)
            continue
        except PermanentError:
            return pending, "", True
        if not pending:
            return [], "", False
        reason = f"{operation}: still unprocessed after retries"
        stats.note_throttle(str(location), side)
    return pending, reason, False


def _get_one_by_one(
    location: TableLocation, side: str, keys: list[Item], consistent: bool, result: BatchResult
) -> None:
    """After a request was rejected, find which key was at fault."""
    for key in keys:
        try:
            item = get_item(location, side, key, consistent)
        except TransientError as exc:
            result.failed[canonical_json(key)] = Failure(str(exc))
            continue
        except (PermanentError, InvalidInputError) as exc:
            result.failed[canonical_json(key)] = Failure(str(exc), retryable=False)
            continue
        if item is not None:
            result.found[canonical_json(key)] = item


def get_item(
    location: TableLocation, side: str, key: Mapping[str, Any], consistent: bool = True
) -> Item | None:
    client = _client(location, side)
    with translated(f"GetItem on {location}"):
        response = client.get_item(
            TableName=location.table, Key=dict(key), ConsistentRead=consistent
        )
    return response.get("Item")


# -- writes ------------------------------------------------------------------------------------


def batch_write(
    location: TableLocation,
    side: str,
    puts: Sequence[Item],
    deletes: Sequence[Item],
) -> dict[str, Failure]:
    """Put items and delete keys (at most one request per key); return failed keys with reasons."""
    names = schema(location, side).names
    requests: list[dict[str, Any]] = [{"PutRequest": {"Item": i}} for i in puts]
    requests += [{"DeleteRequest": {"Key": dict(k)}} for k in deletes]
    failed: dict[str, Failure] = {}
    for chunk in _chunks(requests, WRITE_BATCH):
        _write_chunk(location, side, list(chunk), names, failed)
    return failed


def _request_key(request: Mapping[str, Any], names: Sequence[str]) -> str:
    if "PutRequest" in request:
        return canonical_json({n: request["PutRequest"]["Item"][n] for n in names})
    return canonical_json(request["DeleteRequest"]["Key"])


def _write_chunk(
    location: TableLocation,
    side: str,
    requests: list[dict[str, Any]],
    names: Sequence[str],
    failed: dict[str, Failure],
) -> None:
    client = _client(location, side)

    def send(pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items: Any = {location.table: pending}
        response = client.batch_write_item(RequestItems=items)
        unprocessed: Any = response.get("UnprocessedItems") or {}
        return list(unprocessed.get(location.table, []))

    left, reason, rejected = _until_processed(location, side, "BatchWriteItem", requests, send)
    if rejected:
        _write_one_by_one(location, side, left, names, failed)
        return
    for request in left:
        failed[_request_key(request, names)] = Failure(reason)


def _write_one_by_one(
    location: TableLocation,
    side: str,
    requests: list[dict[str, Any]],
    names: Sequence[str],
    failed: dict[str, Failure],
) -> None:
    """After a request was rejected, find which key was at fault; write the others."""
    client = _client(location, side)
    for request in requests:
        try:
            with translated(f"write to {location}"):
                if "PutRequest" in request:
                    client.put_item(TableName=location.table, Item=request["PutRequest"]["Item"])
                else:
                    client.delete_item(
                        TableName=location.table, Key=request["DeleteRequest"]["Key"]
                    )
        except TransientError as exc:
            failed[_request_key(request, names)] = Failure(str(exc))
        except PermanentError as exc:
            failed[_request_key(request, names)] = Failure(str(exc), retryable=False)


# -- scans -------------------------------------------------------------------------------------


def scan_pages(
    location: TableLocation,
    side: str,
    segment: int = 0,
    segments: int = 1,
    start_key: Item | None = None,
    consistent: bool = False,
    page_size: int | None = None,
) -> Iterator[tuple[list[Item], Item | None]]:
    """Yield (items, last_evaluated_key) page by page for one parallel-scan segment."""
    client = _client(location, side)
    args: dict[str, Any] = {"TableName": location.table, "ConsistentRead": consistent}
    if segments > 1:
        args.update(Segment=segment, TotalSegments=segments)
    if page_size:
        args["Limit"] = page_size
    while True:
        if start_key:
            args["ExclusiveStartKey"] = start_key
        with translated(f"Scan of {location}"):
            response = client.scan(**args)
        start_key = response.get("LastEvaluatedKey")
        yield response.get("Items", []), start_key
        if not start_key:
            return


# -- creating tables (restore) -----------------------------------------------------------------


def create_table(location: TableLocation, side: str, key_schema: KeySchema) -> None:
    """Create an on-demand table with this key schema and wait until it is active."""
    client = _client(location, side)
    attributes = [{"AttributeName": a.name, "AttributeType": a.type} for a in key_schema.attributes]
    keys = [{"AttributeName": key_schema.hash_key.name, "KeyType": "HASH"}]
    if key_schema.range_key:
        keys.append({"AttributeName": key_schema.range_key.name, "KeyType": "RANGE"})
    with translated(f"CreateTable {location}"):
        client.create_table(
            TableName=location.table,
            KeySchema=keys,  # type: ignore[arg-type]
            AttributeDefinitions=attributes,  # type: ignore[arg-type]
            BillingMode="PAY_PER_REQUEST",
        )
        client.get_waiter("table_exists").wait(
            TableName=location.table, WaiterConfig={"Delay": 1, "MaxAttempts": 300}
        )
    _describe.cache_clear()


def exists(location: TableLocation, side: str) -> bool:
    try:
        describe(location, side)
    except NotFoundError:
        return False
    return True
