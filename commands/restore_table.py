"""`restore-table S3URL TABLE`: from backup files, or as at a time from an incremental backup.

* ``restore-table s3://bucket/prefix/JOBID TABLE``: a backup-table job folder (segmented);
* ``restore-table s3://bucket/key TABLE``: one snapshot (or segment) object;
* ``restore-table s3://bucket/prefix/SRCTABLE TABLE --at TIME [--key KEY | --keys FILE]``:
  every key (or those keys) as it was at TIME, from a versioned incremental backup.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, TextIO

import click

from commands.backup_common import Segments, finish, print_failed_key, run_job, segments_from
from commands.bulk.plan import segment_options
from commands.exits import FAILURE, OK, handle_errors
from commands.options import common_options, setup
from tasks.aws import dynamo, s3
from tasks.backup.format import SCHEMA_METADATA, schema_metadata
from tasks.backup.point_in_time import restore_keys_at
from tasks.backup.restore import TableWriter, find_source, prepare_target
from tasks.backup.snapshot import recorded_schema
from tasks.coord.ratelimit import RateLimiter
from tasks.coord.redis_conn import connection
from tasks.core.errors import InvalidInputError
from tasks.core.keys import Key
from tasks.core.locations import REPLICA, S3Location, Table, parse_s3
from tasks.core.times import parse_moment


@click.command()
@click.argument("s3url")
@click.argument("table")
@click.option(
    "--at",
    "at",
    help="Restore as at this time (ISO 8601 or epoch ms); needs a versioned incremental backup.",
)
@click.option("--key", "key", help="With --at: only this key (JSON, plain or typed).")
@click.option(
    "--keys",
    "keys_file",
    type=click.File("r"),
    help="With --at: only the keys in this file (one JSON key a line; - for stdin).",
)
@click.option(
    "--create", is_flag=True, help="Create TABLE with the backup's key schema if missing."
)
@click.option("--rate", type=click.IntRange(min=1), help="At most this many items per second.")
@segment_options
@common_options
@handle_errors
def main(
    s3url: str,
    table: str,
    *,
    at: str | None,
    key: str | None,
    keys_file: TextIO | None,
    create: bool,
    rate: int | None,
    **params: Any,
) -> None:
    """Restore TABLE from the backup at S3URL."""
    options = segments_from(params)
    source, target = parse_s3(s3url), setup(params).table(table, REPLICA)
    if (key or keys_file) and not at:
        raise InvalidInputError("--key and --keys restore a point in time: give --at TIME too")
    if at:
        _restore_at(
            source,
            target,
            at=at,
            key=key,
            keys_file=keys_file,
            create=create,
            rate=rate,
            options=options,
        )
    else:
        _restore_files(source, target, create, rate, options)


def _restore_files(
    source: S3Location,
    target: Table,
    create: bool,
    rate: int | None,
    options: Segments,
) -> None:
    backup = find_source(source)
    prepare_target(target, backup.schema, create)
    recorded = schema_metadata(backup.schema)[SCHEMA_METADATA] if backup.schema else None
    job = {
        "source": str(source),
        "target": target.location.spec,
        "files": list(backup.files),
        "rate": rate or 0,
        "schema": recorded,
    }
    finish(
        run_job("restore-table", job, options, print_failed_key),
        {"files": len(backup.files)},
    )


def _restore_at(
    source: S3Location,
    target: Table,
    *,
    at: str,
    key: str | None,
    keys_file: TextIO | None,
    create: bool,
    rate: int | None,
    options: Segments,
) -> None:
    moment = parse_moment(at)
    s3.require_versioning(source.bucket)
    existed = dynamo.exists(target)
    prepare_target(target, recorded_schema(source) if create and not existed else None, create)
    if key or keys_file:
        _restore_some_at(
            source, target, at=moment.isoformat(), key=key, keys_file=keys_file, rate=rate
        )
        return
    job = {
        "source": str(source),
        "target": target.location.spec,
        "at": moment.isoformat(),
        "rate": rate or 0,
        "delete_absent": existed,
    }
    finish(
        run_job("restore-table-at", job, options, print_failed_key),
        {"at": moment.isoformat()},
    )


def _restore_some_at(
    source: S3Location,
    target: Table,
    *,
    at: str,
    key: str | None,
    keys_file: TextIO | None,
    rate: int | None,
) -> None:
    schema = dynamo.schema(target)
    keys = [Key.parse(key, schema)] if key else []
    if keys_file:
        keys += [Key.parse(line, schema) for line in keys_file if line.strip()]
    limiter = RateLimiter(connection(), f"restore-{uuid.uuid4().hex}", rate) if rate else None
    writer = TableWriter(target, limiter)
    totals = restore_keys_at(source, writer, schema, keys, parse_moment(at))
    for failed, reason in writer.failed.items():
        click.echo(f"[failed] {failed} {reason}")
    click.echo(json.dumps({"at": at, "keys": len(keys), **totals}, sort_keys=True))
    raise SystemExit(FAILURE if totals.get("failed") else OK)
