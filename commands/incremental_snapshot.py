"""`incremental-snapshot SRC DEST`: a table's incremental backup folder into one gzip JSONL."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from cli.exits import handle_errors
from cli.options import common_options, setup
from tasks.backup.snapshot import recorded_schema, snapshot
from tasks.core.locations import parse_s3

PROGRESS_SECONDS = 10.0


@click.command()
@click.argument("source")
@click.argument("destination")
@common_options
@handle_errors
def main(source: str, destination: str, **params: Any) -> None:
    """Snapshot SOURCE (s3://bucket/prefix/TABLE) into the object DESTINATION (s3://bucket/key)."""
    setup(params)
    folder, target = parse_s3(source), parse_s3(destination)
    started = last = time.monotonic()

    def progress(items: int) -> None:
        nonlocal last
        if time.monotonic() - last >= PROGRESS_SECONDS:
            last = time.monotonic()
            click.echo(f"[progress] {items} items", err=True)

    written = snapshot(folder, target, recorded_schema(folder), progress)
    click.echo(
        json.dumps(
            {
                "source": str(folder),
                "snapshot": str(target),
                "items": written.items,
                "bytes": written.bytes,
                "seconds": round(time.monotonic() - started, 3),
            },
            sort_keys=True,
        )
    )
