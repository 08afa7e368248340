"""`replicate-record PRIMARY REPLICA KEY`: make the replica's item match the primary's now.

A strongly consistent read of the primary, then a put (the item exists) or a delete (it does
not) on the replica, through the same code and stale-write guard as the replicate task.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from cli.exits import FAILURE, OK, handle_errors
from cli.options import common_options, setup
from cli.transform_options import transform_from, transform_options
from tasks.aws import dynamo
from tasks.core.keys import Key
from tasks.core.locations import REPLICA
from tasks.replication.sync import ReplicaSink, sync_keys


@click.command()
@click.argument("primary")
@click.argument("replica")
@click.argument("key")
@transform_options
@common_options
@handle_errors
def main(primary: str, replica: str, key: str, **params: Any) -> None:
    """Copy the item with KEY ({"id":"abc"} or {"id":{"S":"abc"}}) from PRIMARY to REPLICA."""
    cfg = setup(params)
    left, right = cfg.table(primary), cfg.table(replica, REPLICA)
    item_key = Key.parse(key, dynamo.same_schema(left, right))
    shape = transform_from(params, left)
    sink = ReplicaSink(right, shape)
    outcome = sync_keys(left, sink, [item_key])
    shown = item_key.canonical
    if outcome.failed:
        (failure,) = outcome.failed.values()
        click.echo(f"error: {shown} was not replicated: {failure.reason}", err=True)
        sys.exit(FAILURE)
    action = "put" if outcome.puts and item_key.canonical not in sink.left_out else "deleted"
    click.echo(f"[{action}] {shown}")
    sys.exit(OK)
