"""`restore-table S3URL TABLE`: from backup files, or as at a time from an incremental backup.

* ``restore-table s3://bucket/prefix/JOBID TABLE``: a backup-table job folder (segmented);
* ``restore-table s3://bucket/key TABLE``: one snapshot (or segment) object;
* ``restore-table s3://bucket/prefix/AWSDynamoDB/ID TABLE [--at TIME]`` (or the export's ARN): a
  DynamoDB export, and the incremental exports after it (``commands.restore_export``);
* ``restore-table s3://bucket/prefix/SRCTABLE TABLE --at TIME [--key KEY | --keys FILE]``:
  every key (or those keys) as it was at TIME, from a versioned incremental backup: a rollback
  (``commands.restore_at``): a plan first with ``--dry-run``, only what differs is written.
"""

from __future__ import annotations

from typing import Any, TextIO

import click

from cli.exits import handle_errors
from cli.options import common_options, setup
from cli.transform_options import transform_from, transform_options
from commands.backup_common import Segments, finish, print_failed_key, run_job, segments_from
from commands.bulk.plan import segment_options
from commands.restore_at import COMPARE_CHOICES, Request, restore_at, window_from
from commands.restore_export import restore_export, source_of
from tasks.aws import permissions
from tasks.backup.format import SCHEMA_METADATA, schema_metadata
from tasks.backup.restore import find_source, prepare_target
from tasks.core.errors import InvalidInputError
from tasks.core.locations import REPLICA, S3Location, Table, parse_s3
from tasks.core.times import parse_moment


@click.command()
@click.argument("s3url")
@click.argument("table")
@click.option(
    "--at",
    "at",
    help="Restore as at this time (ISO 8601 or epoch ms) from a versioned incremental backup; "
    "from a DynamoDB export: apply the incremental exports that end by then.",
)
@click.option(
    "--since",
    help="With --at: undo only the changes made after this time up to --at (a bad deploy's "
    "window): those keys go back to their state at --since; keys changed again after --at are "
    "left as they are and listed.",
)
@click.option("--key", "key", help="With --at: only this key (JSON, plain or typed).")
@click.option(
    "--keys",
    "keys_file",
    type=click.File("r"),
    help="With --at: only the keys in this file (one JSON key a line; - for stdin).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="With --at: print what the restore would write (put, delete, unchanged, unknown) and "
    "change nothing.",
)
@click.option("--show", is_flag=True, help="With --at: print each key put or deleted.")
@click.option(
    "--before-history",
    is_flag=True,
    help="With --at: restore into an existing table even when the time precedes the backup's "
    "history (every key it knows is deleted).",
)
@click.option(
    "--compare",
    type=click.Choice(COMPARE_CHOICES),
    default="auto",
    show_default=True,
    help="With --at: what the state at the time is compared with, to write only what differs: "
    "'backup' (the latest backed-up state: TABLE is the backed-up table), 'table' (TABLE's own "
    "items); auto: 'backup' for the backed-up table when it holds items.",
)
@click.option(
    "--create", is_flag=True, help="Create TABLE with the backup's key schema if missing."
)
@click.option("--rate", type=click.IntRange(min=1), help="At most this many items per second.")
@transform_options
@segment_options
@common_options
@handle_errors
def main(
    s3url: str,
    table: str,
    *,
    at: str | None,
    since: str | None,
    key: str | None,
    keys_file: TextIO | None,
    dry_run: bool,
    show: bool,
    before_history: bool,
    compare: str,
    create: bool,
    rate: int | None,
    **params: Any,
) -> None:
    """Restore TABLE from the backup at S3URL."""
    options = segments_from(params)
    target = setup(params).table(table, REPLICA)
    shape = transform_from(params, target)
    transform = None if shape.empty else shape.to_params()
    at_only = {"--key": key, "--keys": keys_file, "--since": since, "--dry-run": dry_run}
    at_only.update({"--show": show, "--before-history": before_history})
    given = [name for name, value in at_only.items() if value]
    exported = source_of(s3url)
    if exported is not None:
        if given:
            raise InvalidInputError(f"{', '.join(given)}: not for a restore from an export")
        moment = parse_moment(at) if at else None
        permissions.require("restore", permissions.Target(None, target, exported))
        restore_export(
            exported,
            target,
            at=moment,
            create=create,
            rate=rate,
            options=options,
            transform=transform,
        )
        return
    source = parse_s3(s3url)
    if given and not at:
        raise InvalidInputError(f"{', '.join(given)} restore a point in time: give --at TIME too")
    if not (dry_run or show):  # a plan or a key's history writes nothing: reading is enough
        permissions.require("restore", permissions.Target(None, target, source))
    if not at:
        _restore_files(source, target, create, rate, options, transform)
        return
    request = Request(
        source=source,
        target=target,
        window=window_from(at, since, parse_moment),
        key=key,
        keys_file=keys_file,
        create=create,
        compare=compare,
        dry_run=dry_run,
        show=show,
        before_history=before_history,
        rate=rate,
        transform=transform,
    )
    restore_at(request, options)


def _restore_files(
    source: S3Location,
    target: Table,
    create: bool,
    rate: int | None,
    options: Segments,
    transform: dict[str, Any] | None = None,
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
        "transform": transform,
    }
    finish(
        run_job("restore-table", job, options, print_failed_key),
        {"files": len(backup.files)},
    )
