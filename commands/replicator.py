"""`replicator`: operate a running system (dead letters, status)."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

import click

from commands.exits import handle_errors
from commands.flower import flower
from commands.options import common_options, setup
from tasks import deadletters, stats
from tasks.redis_conn import check, connection

TASK_FOR_KIND = {"replicate": "replicate", "backup": "backup-record"}


@click.group()
def main() -> None:
    """Operate dynamodb-replicator: dead letters, replication status, Flower."""


main.add_command(flower)


@main.group("dead-letters")
def dead_letters() -> None:
    """Keys that still failed after retries: list, replay or purge them."""


@dead_letters.command("list")
@common_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@handle_errors
def list_(as_json: bool, **params: Any) -> None:
    """Show every dead-lettered key with its reason and age."""
    setup(params)
    check()
    now = time.time()
    entries = deadletters.entries(connection())
    for _, entry in entries:
        if as_json:
            click.echo(entry.to_json())
        else:
            key = json.dumps(entry.key, separators=(",", ":"), sort_keys=True)
            click.echo(
                f"[{entry.kind}] {entry.source} -> {entry.target} {key} "
                f"attempts={entry.attempts} age={now - entry.at:.0f}s reason={entry.reason}"
            )
    if not as_json:
        click.echo(f"[dead-letters] {len(entries)}")


@dead_letters.command("replay")
@common_options
@handle_errors
def replay(**params: Any) -> None:
    """Enqueue every dead-lettered key again and remove it from the list."""
    setup(params)
    check()
    from worker.app import app

    client = connection()
    groups: dict[tuple[str, str, str], list[tuple[bytes | str, dict[str, Any]]]] = defaultdict(list)
    for raw, entry in deadletters.entries(client):
        groups[(entry.kind, entry.source, entry.target)].append((raw, entry.key))
    replayed = 0
    for (kind, source, target), rows in groups.items():
        for start in range(0, len(rows), 100):
            chunk = rows[start : start + 100]
            app.send_task(TASK_FOR_KIND[kind], args=(source, target, [k for _, k in chunk]))
            replayed += deadletters.remove(client, [raw for raw, _ in chunk])
    click.echo(f"[replayed] {replayed}")


@dead_letters.command("purge")
@common_options
@handle_errors
def purge(**params: Any) -> None:
    """Drop every dead-lettered key."""
    setup(params)
    check()
    click.echo(f"[purged] {deadletters.purge(connection())}")


@main.command("status")
@common_options
@click.argument("replica")
@handle_errors
def status(replica: str, **params: Any) -> None:
    """Counters and apply lag (p50/p99, ms) for a replica or backup target."""
    from tasks.locations import parse_table

    setup(params)
    check()
    target = str(parse_table(replica)) if not replica.startswith("s3://") else replica
    counts = stats.read(connection(), target)
    lags = sorted(stats.lag_samples(connection(), target))
    summary: dict[str, Any] = {k: int(v) for k, v in counts.items() if k != "last_applied_at"}
    if lags:
        summary["lag_ms_p50"] = lags[len(lags) // 2]
        summary["lag_ms_p99"] = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    click.echo(json.dumps(summary, sort_keys=True))
