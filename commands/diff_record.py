"""`diff-record PRIMARY REPLICA KEY`: show one item on both sides, ✔ when equal, ✘ when not.

Both sides are read with strongly consistent reads. Exit 0 when they agree (both present and
equal, or both absent), 1 when they differ, 2 for bad input, 3 for failures.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from cli.exits import DIFFERENT, OK, handle_errors
from cli.options import common_options, ignore_attribute_option, setup
from cli.transform_options import transform_from, transform_options
from tasks.aws import dynamo
from tasks.core.keys import Key
from tasks.core.locations import REPLICA
from tasks.core.transform import load
from tasks.core.typed_json import Item, items_equal, to_wire
from tasks.diff.match import PAIR, differing_attributes, judge


def show(item: Item | None) -> str:
    if item is None:
        return "(absent)"
    return json.dumps(to_wire(item), sort_keys=True, indent=2, ensure_ascii=False)


@click.command()
@click.argument("primary")
@click.argument("replica")
@click.argument("key")
@ignore_attribute_option
@transform_options
@common_options
@handle_errors
def main(primary: str, replica: str, key: str, ignore: tuple[str, ...], **params: Any) -> None:
    """Compare the item with KEY ({"id":"abc"} or {"id":{"S":"abc"}}) on both tables."""
    cfg = setup(params)
    left, right = cfg.table(primary), cfg.table(replica, REPLICA)
    schema = dynamo.same_schema(left, right)
    item_key = Key.parse(key, schema)
    shape = transform_from(params, left)
    items = dynamo.get_item(left, item_key), dynamo.get_item(right, item_key)
    if not shape.empty and items[0] is not None:  # the replica should hold t(primary)
        items = load(shape, schema.names)(items[0]), items[1]
    through = f" through transform {shape.identity}" if not shape.empty else ""
    click.echo(f"primary {left}{through}:\n{show(items[0])}")
    click.echo(f"replica {right}:\n{show(items[1])}")
    if items_equal(*items, ignore=ignore):
        click.echo("✔ the items are equal")
        sys.exit(OK)
    kind = judge(PAIR, *items, ignore)
    detail = ""
    if items[0] is not None and items[1] is not None:
        detail = ": " + ", ".join(differing_attributes(items[0], items[1], ignore))
    click.echo(f"✘ {kind}{detail}")
    sys.exit(DIFFERENT)
