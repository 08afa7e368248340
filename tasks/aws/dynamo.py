"""DynamoDB access: the only module that calls boto3 for tables.

Every function takes a ``Table`` handle (location + side). Reads go out as BatchGetItem (at most
100 keys, strongly consistent when asked) and writes as BatchWriteItem (at most 25 requests, one
per key). UnprocessedKeys / UnprocessedItems and transient failures of a whole request are
retried with capped, jittered exponential backoff; botocore itself retries throttling per
request first (standard retry mode). A key that still fails is returned with its reason (by its
canonical JSON), never dropped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from tasks.aws import clients, consumed, fast_batches, fast_scan, in_flight
from tasks.aws.errors import THROTTLING_CODES, error_code, map_error, translated
from tasks.coord import stats
from tasks.core import config
from tasks.core.backoff import delay
from tasks.core.config import settings
from tasks.core.errors import (
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    SchemaMismatchError,
    TransientError,
)
from tasks.core.iters import batched
from tasks.core.keys import Key
from tasks.core.locations import Table, TableLocation
from tasks.core.typed_json import Item, KeyAttribute, KeySchema, canonical_json, key_json

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PITR_OFF_CODES = {"PointInTimeRecoveryUnavailableException", "PointInTimeRecoveryUnavailable"}
READ_BATCH = 100
WRITE_BATCH = 25


@dataclass(frozen=True)
class TableInfo:
    table: Table
    schema: KeySchema
    stream_arn: str | None
    stream_view_type: str | None
    arn: str = ""


@dataclass(frozen=True)
class Failure:
    """Why a key could not be read or written, and whether trying again later may help."""

    reason: str
    retryable: bool = True


@dataclass
class BatchResult:
    """Per-key outcome of a batch: items found and keys that failed, by canonical key JSON."""

    found: dict[str, Item]
    failed: dict[str, Failure]
    requests: int = 0


def describe(table: Table) -> TableInfo:
    """The table's key schema and stream, read once per process (and settings) and cached."""
    return _describe(table)


@lru_cache(maxsize=128)
def _describe(table: Table) -> TableInfo:
    try:
        with translated(f"table {table}"):
            raw = _client(table).describe_table(TableName=table.name)["Table"]
    except NotFoundError as exc:
        raise NotFoundError(f"table {table} does not exist") from exc
    types = {a["AttributeName"]: a["AttributeType"] for a in raw["AttributeDefinitions"]}
    parts = {
        k["KeyType"]: KeyAttribute(k["AttributeName"], types[k["AttributeName"]])
        for k in raw["KeySchema"]
    }
    stream: Mapping[str, Any] = raw.get("StreamSpecification") or {}
    return TableInfo(
        table=table,
        schema=KeySchema(hash_key=parts["HASH"], range_key=parts.get("RANGE")),
        stream_arn=raw.get("LatestStreamArn") if stream.get("StreamEnabled") else None,
        stream_view_type=stream.get("StreamViewType"),
        arn=str(raw.get("TableArn", "")),
    )


config.on_change(_describe.cache_clear)
_key_json = lru_cache(maxsize=128)(key_json)  # one canonical-key writer per key schema


def schema(table: Table) -> KeySchema:
    return describe(table).schema


def same_schema(primary: Table, replica: Table) -> KeySchema:
    """The shared key schema of two tables; SchemaMismatchError if they differ."""
    expected = schema(primary)
    require_schema(replica, expected, str(primary))
    return expected


def require_schema(table: Table, expected: KeySchema, other: str) -> None:
    """SchemaMismatchError unless ``table``'s key schema is ``expected`` (that of ``other``)."""
    actual = schema(table)
    if actual != expected:
        raise SchemaMismatchError(
            f"key schemas differ: {other} has {expected.describe()}, "
            f"{table} has {actual.describe()}"
        )


def exists(table: Table) -> bool:
    try:
        describe(table)
    except NotFoundError:
        return False
    return True


def _client(table: Table) -> DynamoDBClient:
    """The side's client, watched for throttling (every throttled attempt, botocore's retries
    included, is counted for the metrics by ``stats.note_throttle``), its Scan pages parsed by
    ``fast_scan`` and its batches written and read by ``fast_batches``."""
    client = clients.dynamodb(table)
    if not getattr(client, "_replicator_watched", False):
        location = table.location

        def watch(response: Any = None, request_dict: Any = None, **_: Any) -> None:
            code = response[1].get("Error", {}).get("Code") if response is not None else None
            if code in THROTTLING_CODES:
                stats.note_throttle(_table_of(request_dict or {}, location), table.side)

        client.meta.events.register("needs-retry.dynamodb", watch)
        fast_scan.install(client)
        fast_batches.install(client)
        setattr(client, "_replicator_watched", True)  # noqa: B010 - a plain flag on the client
    return client


def _table_of(request: Mapping[str, Any], location: TableLocation) -> str:
    """The table location a DynamoDB request names (TableName or RequestItems)."""
    try:
        body = json.loads(request.get("body") or b"{}")
    except ValueError:
        body = {}
    name = body.get("TableName") or next(iter(body.get("RequestItems") or {}), "?")
    return str(TableLocation(name, location.region, location.endpoint_url))


def _pause(attempt: int) -> None:
    cfg = settings()
    time.sleep(delay(attempt, cfg.backoff_base, cfg.backoff_cap))


def _metering(table: Table) -> dict[str, Any]:
    """A metered handle's calls ask what they consumed (``tasks.aws.consumed``)."""
    return {"ReturnConsumedCapacity": "TOTAL"} if table.meter is not None else {}


def _meter(table: Table, price: str, response: Mapping[str, Any]) -> None:
    if table.meter is not None:
        units = consumed.units_of(response)
        table.meter.add(table.side, price, units)
        stats.note_consumed(str(table), table.side, units)


# -- reads -------------------------------------------------------------------------------------


def batch_get(table: Table, keys: Sequence[Key], consistent: bool = True) -> BatchResult:
    """Fetch many keys; ``found`` holds the items that exist, ``failed`` keys we could not read.
    Up to ``requests_in_flight`` requests of 100 keys are sent at once."""
    result = BatchResult(found={}, failed={})
    for part in in_flight.each(
        list(batched(keys, READ_BATCH)), lambda chunk: _get_chunk(table, chunk, consistent)
    ):
        result.found.update(part.found)
        result.failed.update(part.failed)
        result.requests += part.requests
    return result


def _get_chunk(table: Table, keys: Sequence[Key], consistent: bool) -> BatchResult:
    client, key_text = _client(table), _key_json(schema(table))
    result = BatchResult(found={}, failed={})
    by_id = {k.canonical: k for k in keys}

    def send(pending: list[Item]) -> list[Item]:
        request: Any = {table.name: {"Keys": pending, "ConsistentRead": consistent}}
        response = client.batch_get_item(RequestItems=request, **_metering(table))
        _meter(table, consumed.STRONG if consistent else consumed.EVENTUAL, response)
        result.requests += 1
        for item in response.get("Responses", {}).get(table.name, []):
            result.found[key_text(item)] = item
        unprocessed: Any = response.get("UnprocessedKeys") or {}
        return list(unprocessed.get(table.name, {}).get("Keys", []))

    left, reason, rejected = _until_processed(table, "BatchGetItem", [k.item for k in keys], send)
    left_keys = [by_id[canonical_json(k)] for k in left]
    if rejected:
        _get_one_by_one(table, left_keys, consistent, result)
        return result
    for key in left_keys:
        result.failed[key.canonical] = Failure(reason)
    return result


def _until_processed(
    table: Table, operation: str, pending: list[Any], send: Callable[[list[Any]], list[Any]]
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
            with translated(f"{operation} on {table}"):
                pending = send(pending)
        except TransientError as exc:
            reason = str(exc)
            continue
        except PermanentError:
            return pending, "", True
        if not pending:
            return [], "", False
        reason = f"{operation}: still unprocessed after retries"
        stats.note_throttle(str(table), table.side)
    return pending, reason, False


def _get_one_by_one(
    table: Table, keys: Sequence[Key], consistent: bool, result: BatchResult
) -> None:
    """After a request was rejected, find which key was at fault."""
    for key in keys:
        try:
            item = get_item(table, key, consistent)
        except TransientError as exc:
            result.failed[key.canonical] = Failure(str(exc))
            continue
        except (PermanentError, InvalidInputError) as exc:
            result.failed[key.canonical] = Failure(str(exc), retryable=False)
            continue
        if item is not None:
            result.found[key.canonical] = item


def get_item(table: Table, key: Key, consistent: bool = True) -> Item | None:
    with translated(f"GetItem on {table}"):
        response = _client(table).get_item(
            TableName=table.name, Key=key.item, ConsistentRead=consistent
        )
    return response.get("Item")


# -- writes ------------------------------------------------------------------------------------


def batch_write(table: Table, puts: Sequence[Item], deletes: Sequence[Key]) -> dict[str, Failure]:
    """Put items and delete keys (at most one request per key); failed keys with reasons."""
    requests: list[dict[str, Any]] = [{"PutRequest": {"Item": i}} for i in puts]
    requests += [{"DeleteRequest": {"Key": k.item}} for k in deletes]
    failed: dict[str, Failure] = {}
    for part in in_flight.each(
        list(batched(requests, WRITE_BATCH)), lambda chunk: _write_chunk(table, chunk)
    ):
        failed.update(part)
    return failed


def _request_key(table: Table, request: Mapping[str, Any]) -> str:
    """The canonical key JSON a write request is for (only for the rare ones that failed)."""
    if "PutRequest" in request:
        item = request["PutRequest"]["Item"]
        return canonical_json({n: item[n] for n in schema(table).names})
    return canonical_json(request["DeleteRequest"]["Key"])


def _write_chunk(table: Table, requests: list[dict[str, Any]]) -> dict[str, Failure]:
    client, failed = _client(table), dict[str, Failure]()

    def send(pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items: Any = {table.name: pending}
        response = client.batch_write_item(RequestItems=items, **_metering(table))
        _meter(table, consumed.WRITE, response)
        unprocessed: Any = response.get("UnprocessedItems") or {}
        return list(unprocessed.get(table.name, []))

    left, reason, rejected = _until_processed(table, "BatchWriteItem", requests, send)
    if rejected:
        _write_one_by_one(table, left, failed)
        return failed
    for request in left:
        failed[_request_key(table, request)] = Failure(reason)
    return failed


def _write_one_by_one(
    table: Table, requests: list[dict[str, Any]], failed: dict[str, Failure]
) -> None:
    """After a request was rejected, find which key was at fault; write the others."""
    client = _client(table)
    for request in requests:
        try:
            with translated(f"write to {table}"):
                if "PutRequest" in request:
                    client.put_item(TableName=table.name, Item=request["PutRequest"]["Item"])
                else:
                    client.delete_item(TableName=table.name, Key=request["DeleteRequest"]["Key"])
        except TransientError as exc:
            failed[_request_key(table, request)] = Failure(str(exc))
        except PermanentError as exc:
            failed[_request_key(table, request)] = Failure(str(exc), retryable=False)


# -- scans -------------------------------------------------------------------------------------


def scan_pages(
    table: Table,
    segment: int = 0,
    segments: int = 1,
    start_key: Item | None = None,
    consistent: bool = False,
    page_size: int | None = None,
) -> Iterator[tuple[list[Item], Item | None]]:
    """Yield (items, last_evaluated_key) page by page for one parallel-scan segment."""
    client = _client(table)
    args: dict[str, Any] = {"TableName": table.name, "ConsistentRead": consistent}
    if segments > 1:
        args.update(Segment=segment, TotalSegments=segments)
    if page_size:
        args["Limit"] = page_size
    args.update(_metering(table))
    while True:
        if start_key:
            args["ExclusiveStartKey"] = start_key
        with translated(f"Scan of {table}"):
            response = client.scan(**args)
        _meter(table, consumed.STRONG if consistent else consumed.EVENTUAL, response)
        start_key = response.get("LastEvaluatedKey")
        yield response.get("Items", []), start_key
        if not start_key:
            return


# -- listing tables (the pipelines file's discover rules) --------------------------------------


def table_names(where: Table) -> list[str]:
    """Every table of ``where``'s account, region and endpoint (``where``'s name is ignored)."""
    client, names = _client(where), []
    args: dict[str, Any] = {}
    while True:
        with translated(f"ListTables {where.location.region}"):
            page = client.list_tables(**args)
        names += page.get("TableNames", [])
        if not page.get("LastEvaluatedTableName"):
            return names
        args = {"ExclusiveStartTableName": page["LastEvaluatedTableName"]}


def tags(table: Table) -> dict[str, str]:
    """The table's tags (ListTagsOfResource, every page)."""
    client, found = _client(table), {}
    args: dict[str, Any] = {"ResourceArn": describe(table).arn}
    while True:
        with translated(f"ListTagsOfResource {table}"):
            page = client.list_tags_of_resource(**args)
        found.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
        if not page.get("NextToken"):
            return found
        args = {**args, "NextToken": page["NextToken"]}


# -- creating tables (restore) -----------------------------------------------------------------


def create_table(table: Table, key_schema: KeySchema) -> None:
    """Create an on-demand table with this key schema and wait until it is active."""
    client = _client(table)
    attributes = [{"AttributeName": a.name, "AttributeType": a.type} for a in key_schema.attributes]
    keys = [{"AttributeName": key_schema.hash_key.name, "KeyType": "HASH"}]
    if key_schema.range_key:
        keys.append({"AttributeName": key_schema.range_key.name, "KeyType": "RANGE"})
    with translated(f"CreateTable {table}"):
        client.create_table(
            TableName=table.name,
            KeySchema=keys,  # type: ignore[arg-type]
            AttributeDefinitions=attributes,  # type: ignore[arg-type]
            BillingMode="PAY_PER_REQUEST",
        )
        client.get_waiter("table_exists").wait(
            TableName=table.name, WaiterConfig={"Delay": 1, "MaxAttempts": 300}
        )
    _describe.cache_clear()


# -- exports to S3 -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportStatus:
    """What DescribeExport says of an export."""

    arn: str
    status: str  # IN_PROGRESS, COMPLETED, FAILED
    bucket: str
    manifest: str  # the key of its manifest-summary.json ("" until known)
    items: int
    failure: str
    time: float  # epoch seconds: the export's time (an incremental export's end)


def start_export(
    table: Table,
    bucket: str,
    prefix: str,
    since: float | None = None,
    until: float | None = None,
    at: float | None = None,
) -> str:
    """Ask for an export of the table to ``s3://bucket/prefix`` (as at ``at``, or incremental
    from ``since`` to ``until`` when ``since`` is given); its ARN. ConfigurationError when
    point-in-time recovery is off, saying how to turn it on."""
    args: dict[str, Any] = {
        "TableArn": describe(table).arn,
        "S3Bucket": bucket,
        "S3Prefix": prefix,
        "ExportFormat": "DYNAMODB_JSON",
    }
    if at is not None:
        args["ExportTime"] = at
    if since is not None:
        args["ExportType"] = "INCREMENTAL_EXPORT"
        spec = {"ExportFromTime": since, "ExportViewType": "NEW_IMAGE"}
        args["IncrementalExportSpecification"] = {
            **spec,
            **({"ExportToTime": until} if until else {}),
        }
    try:
        response = _client(table).export_table_to_point_in_time(**args)
    except ClientError as exc:
        if error_code(exc) in PITR_OFF_CODES:
            raise pitr_off(table) from exc
        raise map_error(exc, f"ExportTableToPointInTime of {table}") from exc
    return str(response["ExportDescription"]["ExportArn"])


def pitr_off(table: Table) -> ConfigurationError:
    """The error for an export of a table whose point-in-time recovery is off."""
    return ConfigurationError(
        f"point-in-time recovery is off for {table}, and an export needs it: "
        f"aws dynamodb update-continuous-backups --table-name {table.name} "
        "--point-in-time-recovery-specification PointInTimeRecoveryEnabled=true"
    )


def point_in_time_recovery(table: Table) -> bool:
    """Whether the table's point-in-time recovery is on (an export needs it)."""
    with translated(f"DescribeContinuousBackups of {table}"):
        raw: Any = _client(table).describe_continuous_backups(TableName=table.name)
    description = raw.get("ContinuousBackupsDescription", {})
    status = description.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
    return bool(status == "ENABLED")


def describe_export(table: Table, arn: str) -> ExportStatus:
    with translated(f"DescribeExport {arn}"):
        raw: Any = _client(table).describe_export(ExportArn=arn)["ExportDescription"]
    when = raw.get("IncrementalExportSpecification", {}).get("ExportToTime") or raw.get(
        "ExportTime"
    )
    return ExportStatus(
        arn=arn,
        status=str(raw.get("ExportStatus", "")),
        bucket=str(raw.get("S3Bucket", "")),
        manifest=str(raw.get("ExportManifest", "")),
        items=int(raw.get("ItemCount") or 0),
        failure=str(raw.get("FailureMessage") or raw.get("FailureCode") or ""),
        time=when.timestamp() if when else 0.0,
    )


def exports(table: Table) -> list[str]:
    """The ARNs of the table's exports (ListExports, every page)."""
    client, found = _client(table), []
    args: dict[str, Any] = {"TableArn": describe(table).arn}
    while True:
        with translated(f"ListExports of {table}"):
            page: Any = client.list_exports(**args)
        found += [str(e["ExportArn"]) for e in page.get("ExportSummaries", [])]
        if not page.get("NextToken"):
            return found
        args["NextToken"] = page["NextToken"]
