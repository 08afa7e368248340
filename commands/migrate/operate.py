"""``replicator migrate status|stop|forget``: what an operator does to a migration from outside.

``status`` shows every record as it is (``commands.migrate.show``); ``stop`` asks a running
migration's command to stop, and says no (exit 2) to one that does not run; ``forget`` removes
a migration that does not run: its record, its tail's checkpoints, its ``replicator status``
listing.
"""

from __future__ import annotations

import json
from typing import Any

import click

from cli.exits import handle_errors
from cli.options import common_options, setup
from commands.migrate import show
from commands.migrate.record import LIVE_STATES, MigrationStore
from commands.migrate.tail import consumer_name
from producer import status as producer_status
from producer.checkpoints import Checkpoints
from tasks.coord.redis_conn import check, connection
from tasks.core.errors import InvalidInputError


@click.command("status")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per migration.")
@common_options
@handle_errors
def status(name: str | None, as_json: bool, **params: Any) -> None:
    """Show every migration (or NAME): state, phase, lag, counts, time per phase.

    States: running, ready (following the stream), refused (by preflight, with the reason),
    failed (with the reason), interrupted (its command stopped reporting: rerun it), stopped.
    """
    setup(params)
    check()
    store = MigrationStore(connection())
    chosen = [name] if name else store.names()
    records = [r for r in (store.load(n) for n in chosen) if r is not None]
    if name and not records:
        raise InvalidInputError(f"no migration named {name!r}")
    for record in records:
        shown_record = show.view(store, record)
        click.echo(json.dumps(shown_record, sort_keys=True) if as_json else show.line(shown_record))


def _live(name: str) -> tuple[MigrationStore, str]:
    """The store and the state of migration ``name`` (which must exist)."""
    check()
    store = MigrationStore(connection())
    record = store.load(name)
    if record is None:
        raise InvalidInputError(f"no migration named {name!r}")
    return store, store.state(record)


@click.command("stop")
@click.argument("name")
@common_options
@handle_errors
def stop(name: str, **params: Any) -> None:
    """Ask the running migration NAME to stop tailing and exit 0."""
    setup(params)
    store, state = _live(name)
    if state not in LIVE_STATES:
        raise InvalidInputError(f"migration {name} is not running (state={state}): nothing to stop")
    store.request_stop(name)
    click.echo(f"asked migration {name} to stop")


@click.command("forget")
@click.argument("name")
@common_options
@handle_errors
def forget(name: str, **params: Any) -> None:
    """Remove migration NAME's record and its tail's checkpoints (refused while it runs).

    TARGET and its items stay; a later run under the same name starts from preflight.
    """
    setup(params)
    store, state = _live(name)
    if state in LIVE_STATES:
        raise InvalidInputError(
            f"migration {name} is {state}: stop it first (replicator migrate stop {name})"
        )
    consumer = consumer_name(name)
    checkpoints = Checkpoints(connection(), consumer)
    checkpoints.forget(list(checkpoints.load()))
    producer_status.unregister(connection(), consumer)
    store.forget(name)
    click.echo(f"forgot migration {name}")
