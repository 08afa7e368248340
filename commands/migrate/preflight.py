"""Before a migration touches anything: can it work, and will the backfill finish in time?

Every refusal is an ``InvalidInputError`` or ``NotFoundError`` (one line, exit 2) and nothing
has been created when it is raised.

The backfill rate is items per second, or a share of the tables' capacity (``50%``): for a
provisioned table, the share of what its capacity allows for this table's average item size (a
scanned and then strongly-consistently re-read item costs 1.5 read units per 4 KB on SOURCE, a
written one 1 write unit per KB on TARGET; the smaller bound wins); for an on-demand table, the
share of ``ON_DEMAND_ITEMS_PER_SECOND``. The backfill must be estimated to take at most
``RETENTION_SHARE`` of the stream's retention: changes older than the retention are gone, and
only a new full diff could find what they changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from producer.sources.kinesis import KinesisSource
from tasks.aws import definitions, dynamo, permissions, s3
from tasks.aws.capacity import Rate
from tasks.aws.definitions import Definition
from tasks.core.errors import InvalidInputError, NotFoundError, SchemaMismatchError
from tasks.core.locations import S3Location, Table

STREAM_RETENTION_SECONDS = 24 * 3600.0
"""DynamoDB Streams keeps change records for 24 hours."""
RETENTION_SHARE = 0.5
"""The backfill must be estimated to end within this share of the stream's retention."""
EXPORT_ALLOWANCE_SECONDS = 2 * 3600
"""What an export is allowed to take before its load starts, in the retention check (AWS
exports a table in minutes to a few hours, whatever its size, without read capacity)."""


@dataclass(frozen=True)
class Preflight:
    source: Definition
    target: Definition | None  # None: TARGET does not exist yet (created with --create)
    items_per_second: float
    estimate_seconds: float
    item_bytes: dict[str, float] | None = None  # a share rate's planned sizes (Rate.item_bytes)


def check(
    source: Table,
    target: Table,
    rate: Rate,
    *,
    create: bool,
    export_to: S3Location | None = None,
    kinesis_stream: str | None = None,
) -> Preflight:
    """Both tables reachable, schemas equal (or TARGET absent with --create), SOURCE's stream
    on (or the Kinesis stream it writes to reachable), and a backfill estimated to end well
    inside the stream's retention (DynamoDB Streams: 24 h; a Kinesis stream: its own, up to a
    year). With an export: SOURCE's point-in-time recovery on, the bucket writable, and the
    export's allowance plus the load inside the retention (the tail starts after the load, from
    the capture)."""
    needs = permissions.Target(source, target, export_to, kinesis_stream, export_to is not None)
    src = permissions.after("migrate", needs, lambda: definitions.describe(source))
    retention, stream = STREAM_RETENTION_SECONDS, "the stream's"
    if kinesis_stream is not None:
        retention = KinesisSource(source, kinesis_stream).retention_seconds
        stream = f"the Kinesis stream {kinesis_stream}'s"
    elif src.stream_view_type is None:
        raise InvalidInputError(
            f"table {source} has no stream: enable DynamoDB Streams on it (any view type, "
            "KEYS_ONLY is enough), or give the Kinesis stream it writes to (--kinesis-stream), "
            "before migrating"
        )
    dst = _target(source, target, src, create=create)
    per_second = rate.items_per_second(src, dst)
    estimate = src.item_count / per_second
    if export_to is not None:
        _check_export(source, export_to)
        estimate += EXPORT_ALLOWANCE_SECONDS
    allowed = retention * RETENTION_SHARE
    if estimate > allowed:
        raise InvalidInputError(
            f"the backfill of {src.item_count} items at {per_second:.0f} items/s would take "
            f"about {_hours(estimate)}, more than {_hours(allowed)} ({RETENTION_SHARE:.0%} of "
            f"{stream} {retention / 3600:.0f} h retention): raise --rate"
            + ("" if kinesis_stream else ", or tail a Kinesis stream (--kinesis-stream)")
        )
    return Preflight(src, dst, per_second, estimate, rate.item_bytes(primary=src, replica=dst))


def _check_export(source: Table, export_to: S3Location) -> None:
    """Point-in-time recovery on, and the export's bucket writable (a marker put, then deleted)."""
    if not dynamo.point_in_time_recovery(source):
        raise dynamo.pitr_off(source)
    marker = export_to.key(".replicator-write-check")
    s3.check_bucket(export_to.bucket)
    s3.put(export_to.bucket, marker, b"")
    s3.delete(export_to.bucket, marker)


def _target(source: Table, target: Table, src: Definition, *, create: bool) -> Definition | None:
    try:
        dst = definitions.describe(target)
    except NotFoundError:
        if create:
            return None
        raise NotFoundError(
            f"table {target} does not exist: create it, or pass --create to copy SOURCE's "
            "definition"
        ) from None
    if _key_schema(dst) != _key_schema(src):
        raise SchemaMismatchError(
            f"key schemas differ: {source} has {_describe_keys(src)}, "
            f"{target} has {_describe_keys(dst)}"
        )
    return dst


def _key_schema(table: Definition) -> list[tuple[str, str, str]]:
    types = {a["AttributeName"]: a["AttributeType"] for a in table.attributes}
    return [(k["KeyType"], k["AttributeName"], types[k["AttributeName"]]) for k in table.key_schema]


def _describe_keys(table: Definition) -> str:
    return ", ".join(f"{name} ({kind})" for _, name, kind in _key_schema(table))


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"
