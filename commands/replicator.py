"""`replicator`: operate a running system (dead letters, status)."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

import click

from cli.exits import handle_errors
from cli.options import common_options, config_option, setup
from commands.flower import flower
from commands.iam_policy import iam_policy
from commands.migrate import migrate
from commands.pipelines import pipelines
from commands.verify import verify
from producer import fleet_status, plans
from producer import status as producer_status
from tasks.coord import deadletters, stats
from tasks.coord.redis_conn import check, connection
from tasks.core import pipelines as pipelines_file
from tasks.core.iters import batched
from tasks.core.times import age_text
from tasks.messages import KeysMessage


@click.group()
def main() -> None:
    """Operate dynamodb-replicator: dead letters, replication status, Flower."""


main.add_command(flower)
main.add_command(iam_policy)
main.add_command(migrate)
main.add_command(pipelines)
main.add_command(verify)


@main.group("dead-letters")
def dead_letters() -> None:
    """Keys that still failed after retries: list, replay or purge them."""


def _selected(target: str | None) -> list[tuple[bytes | str, deadletters.DeadLetter]]:
    """Dead letters, only those of one target (replica location or S3 URL) when given."""
    entries = deadletters.entries(connection())
    return [(raw, e) for raw, e in entries if target is None or e.target == target]


def _target_option(func: Any) -> Any:
    return click.option(
        "--target", help="Only the keys of this target (replica location or s3:// URL)."
    )(func)


@dead_letters.command("list")
@common_options
@_target_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@handle_errors
def list_(as_json: bool, target: str | None, **params: Any) -> None:
    """Show every dead-lettered key with its reason and age."""
    setup(params)
    check()
    now = time.time()
    entries = _selected(target)
    for _, entry in entries:
        if as_json:
            data = {**json.loads(entry.to_json()), "age_seconds": round(now - entry.at, 3)}
            click.echo(json.dumps(data, sort_keys=True, separators=(",", ":")))
        else:
            key = json.dumps(entry.key, separators=(",", ":"), sort_keys=True)
            click.echo(
                f"[{entry.kind}] {entry.source} -> {entry.target} {key} "
                f"attempts={entry.attempts} age={age_text(now - entry.at)} "
                f"reason={entry.reason}"
            )
    if not as_json:
        click.echo(f"[dead-letters] {len(entries)}")


@dead_letters.command("replay")
@common_options
@_target_option
@click.option("--dry-run", is_flag=True, help="Say what would be replayed; change nothing.")
@handle_errors
def replay(target: str | None, dry_run: bool, **params: Any) -> None:
    """Enqueue dead-lettered keys again (fresh retries) and remove them from the list.

    Replication reads the primary's current state, so a replay is safe at any time: run it once
    the cause (listed as the reason) is fixed.
    """
    setup(params)
    check(celery=True)
    from worker.app import app

    client = connection()
    Group = tuple[str, str, str, str]
    groups: dict[Group, list[tuple[bytes | str, dict[str, Any]]]] = defaultdict(list)
    for raw, entry in _selected(target):
        carried = json.dumps(entry.carried, sort_keys=True)  # the transform travels too
        groups[(entry.kind, entry.source, entry.target, carried)].append((raw, entry.key))
    replayed = 0
    for (kind, source, dest, carried), rows in groups.items():
        if dry_run:
            click.echo(f"[would-replay] {len(rows)} {kind} {source} -> {dest}")
            continue
        for chunk in batched(rows, 100):
            keys = [k for _, k in chunk]
            KeysMessage.replayed(kind, source, dest, keys, json.loads(carried)).send(app)
            replayed += deadletters.remove(client, [raw for raw, _ in chunk])
    if not dry_run:
        click.echo(f"[replayed] {replayed}")


@dead_letters.command("purge")
@common_options
@_target_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def purge(target: str | None, yes: bool, **params: Any) -> None:
    """Drop dead-lettered keys without replaying them (the replica may stay behind)."""
    setup(params)
    check()
    entries = _selected(target)
    if not yes:
        click.confirm(f"Drop {len(entries)} dead-lettered keys without replaying them?", abort=True)
    if target is None:
        click.echo(f"[purged] {deadletters.purge(connection())}")
    else:
        click.echo(f"[purged] {deadletters.remove(connection(), [raw for raw, _ in entries])}")


@main.command("status")
@common_options
@click.argument("replica", required=False)
@config_option(
    "The fleet of this pipelines file (default, without REPLICA: every pipeline that ran)."
)
@click.option("--json", "as_json", is_flag=True, help="The fleet: one JSON object per pipeline.")
@handle_errors
def status(replica: str | None, config_path: str | None, as_json: bool, **params: Any) -> None:
    """Counters and apply lag (p50/p99, ms) for a replica or backup target, the transform its
    messages carry, and the producers that feed it: leases per producer, each shard's iterator
    age, lag and stalled time.

    Without REPLICA, the fleet: one row per pipeline (of --config FILE, or every pipeline a
    producer registered): its transform, producers, shards held, lag p50/p99, worst iterator
    age, stalled shards, its verifier's last full pass (how long ago), the drift it confirmed
    and the coverage of the pass in hand (`replicator verify`), dead letters and warnings.

    Warnings (a stream nearing its retention, a checkpoint not advancing, no producer running)
    go to stderr, one line each.
    """
    cfg = setup(params)
    check()
    if replica is None:
        _fleet_status(config_path, as_json)
        return
    target = replica if replica.startswith("s3://") else str(cfg.location(replica))
    counts = stats.read(connection(), target)
    summary: dict[str, Any] = {k: int(v) for k, v in counts.items() if k != "last_applied_at"}
    summary.update(stats.lag_ms(connection(), target))
    streams = producer_status.read(connection(), target)
    summary["streams"] = [s.as_json() for s in streams]
    transforms = {s.transforms[target] for s in streams if target in s.transforms}
    summary["transform"] = ",".join(sorted(transforms)) or None
    click.echo(json.dumps(summary, sort_keys=True))
    for stream in streams:
        for warning in stream.warnings:
            click.echo(f"warning: {warning}", err=True)


FLEET_COLUMNS = (
    "pipeline",
    "transform",
    "producers",
    "shards",
    "lag p50",
    "lag p99",
    "iter age",
    "stalled",
    "verified",
    "drift",
    "coverage",
)


def _fleet_status(config_path: str | None, as_json: bool) -> None:
    names = None
    if config_path:
        names = [p.name for p in plans.resolve(pipelines_file.load(config_path))]
    rows = fleet_status.rows(connection(), names)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.as_json(), sort_keys=True, separators=(",", ":")))
    else:
        click.echo(_table(rows))
    for row in rows:
        for warning in row.warnings:
            click.echo(f"warning: {warning}", err=True)


def _table(rows: list[fleet_status.PipelineRow]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}ms"

    lines = [(*FLEET_COLUMNS, "dead letters", "warnings")]
    lines += [
        (
            r.pipeline,
            r.transform or "-",
            str(r.producers),
            str(r.shards),
            ms(r.lag_ms_p50),
            ms(r.lag_ms_p99),
            age_text(r.max_iterator_age_s),
            str(r.stalled_shards),
            "-" if r.verified_at is None else f"{age_text(time.time() - r.verified_at)} ago",
            "-" if r.drift is None else str(r.drift),
            "-" if r.coverage is None else f"{100 * r.coverage:.0f}%",
            str(r.dead_letters),
            str(len(r.warnings)),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )
