"""`backup-table TABLE S3URL`: the whole table as gzip JSONL objects at PREFIX/JOBID/SEGMENT,
or (``--export``) as a DynamoDB export to ``PREFIX/AWSDynamoDB/ID`` (``--incremental``: the
changes since the last export there)."""

from __future__ import annotations

import json
from typing import Any

import click

from cli.exits import handle_errors
from cli.options import common_options, setup
from commands.backup_common import finish, run_job, segments_from
from commands.bulk.plan import segment_options
from tasks.aws import dynamo, permissions, s3
from tasks.backup import export
from tasks.backup.dump import new_job_id
from tasks.core.errors import InvalidInputError
from tasks.core.locations import S3Location, Table, parse_s3


def _print_segment(record: str) -> None:
    data = json.loads(record)
    click.echo(
        f"[segment {data['segment']}] {data['items']} items, {data['bytes']} bytes "
        f"-> {data['object']}"
    )


@click.command()
@click.argument("table")
@click.argument("s3url")
@click.option("--jobid", help="Name of the job folder (default: random).")
@click.option(
    "--export",
    "use_export",
    is_flag=True,
    help="Ask DynamoDB for an export to S3URL (point-in-time recovery must be on) instead of "
    "scanning: no read capacity used; restore-table restores from its folder.",
)
@click.option(
    "--incremental",
    is_flag=True,
    help="With --export: only the changes since the last export into S3URL.",
)
@segment_options
@common_options
@handle_errors
def main(
    table: str,
    s3url: str,
    jobid: str | None,
    use_export: bool,
    incremental: bool,
    **params: Any,
) -> None:
    """Back up TABLE (region/table or endpoint/table) to S3URL (s3://bucket/prefix)."""
    options = segments_from(params)
    location, destination = setup(params).table(table), parse_s3(s3url)

    def reachable() -> None:
        dynamo.describe(location)
        s3.check_bucket(destination.bucket)

    target = permissions.Target(location, None, destination, None, use_export)
    permissions.after("backup", target, reachable)
    if incremental and not use_export:
        raise InvalidInputError("--incremental goes with --export")
    if use_export:
        _export(location, destination, incremental, options.progress_interval)
        return
    job_id = jobid or new_job_id()
    job = {"table": location.location.spec, "s3url": str(destination), "jobid": job_id}
    outcome = run_job("backup-table", job, options, _print_segment)
    finish(outcome, {"backup": str(destination.child(job_id))})


def _export(location: Table, destination: S3Location, incremental: bool, every: float) -> None:
    """Ask for the export, show its progress, print where it is (restore-table takes that)."""
    arn = export.request(location, destination, incremental)
    shown = {"at": 0.0}

    def progress(status: dynamo.ExportStatus, elapsed: float) -> None:
        if elapsed - shown["at"] >= every or status.status != "IN_PROGRESS":
            shown["at"] = elapsed
            click.echo(f"[progress] export {status.status.lower()} after {elapsed:.0f}s", err=True)

    status = export.wait(location, arn, progress)
    folder = export.folder_of(status)
    summary = {"export": arn, "folder": str(folder), "items": status.items}
    click.echo(json.dumps({**summary, "incremental": incremental}, sort_keys=True))
