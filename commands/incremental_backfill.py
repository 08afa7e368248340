"""`incremental-backfill TABLE S3URL`: every item of TABLE to its incremental backup object."""

from __future__ import annotations

from typing import Any

import click

from cli.exits import handle_errors
from cli.options import common_options, setup
from commands.backup_common import finish, print_failed_key, run_job, segments_from
from commands.bulk.plan import segment_options
from tasks.aws import dynamo, s3
from tasks.core.locations import parse_s3


@click.command()
@click.argument("table")
@click.argument("s3url")
@segment_options
@common_options
@handle_errors
def main(table: str, s3url: str, **params: Any) -> None:
    """Write every item of TABLE to S3URL/TABLE/ID (s3://bucket/prefix)."""
    options = segments_from(params)
    location, destination = setup(params).table(table), parse_s3(s3url)
    dynamo.describe(location)
    s3.check_bucket(destination.bucket)
    job = {"table": location.location.spec, "s3url": str(destination)}
    outcome = run_job("incremental-backfill", job, options, print_failed_key)
    finish(outcome)
