"""`backup-table TABLE S3URL`: the whole table as gzip JSONL objects at PREFIX/JOBID/SEGMENT."""

from __future__ import annotations

import json
from typing import Any

import click

from commands.backup_common import finish, run_job, segments_from
from commands.bulk.plan import segment_options
from commands.exits import handle_errors
from commands.options import common_options, setup
from tasks.aws import dynamo, s3
from tasks.backup.dump import new_job_id
from tasks.core.locations import parse_s3


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
@segment_options
@common_options
@handle_errors
def main(table: str, s3url: str, jobid: str | None, **params: Any) -> None:
    """Back up TABLE (region/table or endpoint/table) to S3URL (s3://bucket/prefix)."""
    options = segments_from(params)
    location, destination = setup(params).table(table), parse_s3(s3url)
    dynamo.describe(location)
    s3.check_bucket(destination.bucket)
    job_id = jobid or new_job_id()
    job = {"table": location.location.spec, "s3url": str(destination), "jobid": job_id}
    outcome = run_job("backup-table", job, options, _print_segment)
    finish(outcome, {"backup": str(destination.child(job_id))})
