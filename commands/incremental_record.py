"""`incremental-backup-record`, `incremental-diff-record`, `incremental-record-history`.

Each takes TABLE S3URL KEY: the table the record lives in, the incremental backup location
(s3://bucket/prefix; the table's name is appended) and the key as JSON, plain or typed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from cli.exits import DIFFERENT, FAILURE, OK, handle_errors
from cli.options import common_options, setup
from tasks.aws import dynamo, s3
from tasks.backup.format import decode_item
from tasks.backup.history import history, object_name
from tasks.backup.incremental import S3Sink, object_key, table_folder
from tasks.core.keys import Key
from tasks.core.locations import S3Location, Table, parse_s3
from tasks.core.typed_json import Item, items_equal, to_wire
from tasks.replication.sync import sync_keys


def _arguments(func: Any) -> Any:
    decorators: list[Any] = [
        click.argument("table"),
        click.argument("s3url"),
        click.argument("key"),
        common_options,
        handle_errors,
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _parse(
    table: str, s3url: str, key: str, params: dict[str, Any]
) -> tuple[Table, S3Location, Key]:
    cfg = setup(params)
    handle, backup = cfg.table(table), parse_s3(s3url)
    return handle, backup, Key.parse(key, dynamo.schema(handle))


def _compact(value: Any) -> str:
    return json.dumps(to_wire(value), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


@click.command()
@_arguments
def backup_main(table: str, s3url: str, key: str, **params: Any) -> None:
    """Write the record's current state to its incremental backup object."""
    location, backup, parsed = _parse(table, s3url, key, params)
    actions: list[str] = []
    sink = S3Sink(backup, location.name, on_change=lambda c: actions.append(c.action))
    outcome = sync_keys(location, sink, [parsed])
    if outcome.failed:
        reason = next(iter(outcome.failed.values())).reason
        click.echo(f"error: {parsed}: {reason}", err=True)
        sys.exit(FAILURE)
    name = object_key(table_folder(backup, location.name), parsed)
    action = actions[-1] if actions else "unchanged"
    click.echo(f"[{action}] {parsed} s3://{backup.bucket}/{name}")


@click.command()
@_arguments
def diff_main(table: str, s3url: str, key: str, **params: Any) -> None:
    """Compare the record in the table with its incremental backup (✔ exit 0, ✘ exit 1)."""
    location, backup, parsed = _parse(table, s3url, key, params)
    folder = table_folder(backup, location.name)
    s3.check_bucket(backup.bucket)
    in_table = dynamo.get_item(location, parsed, consistent=True)
    name = object_name(folder, parsed)
    found = s3.get(backup.bucket, name)
    in_backup = decode_item(found[0], f"s3://{backup.bucket}/{name}") if found else None
    click.echo(f"DynamoDB record: {_describe(in_table)}")
    click.echo(f"Incremental backup record (s3://{backup.bucket}/{name}): {_describe(in_backup)}")
    if items_equal(in_table, in_backup):
        click.echo("✔ The records are equivalent")
        sys.exit(OK)
    click.echo("✘ The records are not equivalent")
    sys.exit(DIFFERENT)


def _describe(item: Item | None) -> str:
    return "absent" if item is None else _compact(item)


@click.command()
@_arguments
@click.option("--json", "as_json", is_flag=True, help="One JSON object per version.")
def history_main(table: str, s3url: str, key: str, as_json: bool, **params: Any) -> None:
    """Every version of the record in the incremental backup, oldest first, deletions included."""
    location, backup, parsed = _parse(table, s3url, key, params)
    count = 0
    for entry in history(table_folder(backup, location.name), parsed):
        count += 1
        when = entry.changed.isoformat()  # the change's time (S3's for older versions)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "changed": when,
                        "modified": entry.version.modified.isoformat(),
                        "version": entry.version.version_id,
                        "deleted": entry.item is None,
                        "item": to_wire(entry.item) if entry.item else None,
                    },
                    sort_keys=True,
                )
            )
        else:
            state = "deleted" if entry.item is None else _compact(entry.item)
            click.echo(f"[{when}] {entry.version.version_id} {state}")
    if not as_json:
        click.echo(f"[versions] {count}")
