"""`replicator migrate SOURCE TARGET`: a live table migration as one resumable job.

``replicator migrate [run] SOURCE TARGET [--create] [--segments N] [--rate R]
[--verify full|sample:P] [--backup s3://...] [--name NAME]`` runs the phases of
``commands.migrate.phases``; ``replicator migrate status [NAME]`` shows them;
``replicator migrate stop NAME`` ends a running migration's tail cleanly.

Exit status: 0 ready (and stopped cleanly), 2 refused by preflight or bad usage, 3 failure.
"""

from __future__ import annotations

import hashlib
import signal
import sys
import time
from typing import Any

import click

from commands.bulk.plan import plan as segment_plan
from commands.bulk.plan import waiting_options
from commands.exits import FAILURE, OK, handle_errors
from commands.migrate.phases import MigrationFailed, Migrator, Options, Verify
from commands.migrate.preflight import Rate
from commands.migrate.record import PHASES, Migration, MigrationStore
from commands.options import common_options, setup
from tasks.coord.redis_conn import check, connection
from tasks.core.errors import InvalidInputError
from tasks.core.locations import REPLICA, parse_s3, shown
from tasks.core.times import parse_time

DEFAULT_SEGMENTS = 8
VERIFY_SEGMENTS = 100
"""Scan segments of a verify pass; ``sample:P`` runs P per cent of them."""


class Stopped(BaseException):
    """SIGTERM or SIGINT: stop after the step in hand (a running bulk job is left to finish,
    so that a rerun waits for it again)."""


class _MigrateGroup(click.Group):
    """``migrate SOURCE TARGET`` runs a migration; ``migrate status|stop`` operate one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("migrate", cls=_MigrateGroup)
def migrate() -> None:
    """Migrate a live table: copy, catch up, verify, then follow until cut-over.

    replicator migrate [run] SOURCE TARGET ...   (see `replicator migrate run --help`)
    """


def default_name(source: str, target: str) -> str:
    digest = hashlib.sha256(f"{source}|{target}".encode()).hexdigest()[:12]
    return f"migrate-{digest}"


@migrate.command("run")
@click.argument("source")
@click.argument("target")
@click.option("--create", is_flag=True, help="Create TARGET with SOURCE's definition.")
@click.option(
    "--with-stream",
    is_flag=True,
    help="With --create: give TARGET SOURCE's stream setting (to replicate back later).",
)
@click.option(
    "--segments",
    type=click.IntRange(min=1),
    default=DEFAULT_SEGMENTS,
    show_default=True,
    help="Backfill scan segments (Celery tasks on the bulk queue).",
)
@click.option(
    "--rate",
    default="50%",
    show_default=True,
    metavar="R",
    help="Backfill items/s, or a share of the tables' capacity (50%).",
)
@click.option(
    "--verify",
    "verify_text",
    default="full",
    show_default=True,
    metavar="full|sample:P",
    help="Verify every segment, or a random P per cent of them.",
)
@click.option("--backup", metavar="s3://BUCKET/PREFIX", help="Also back every change up to S3.")
@click.option("--name", help="The migration's name (default: derived from SOURCE and TARGET).")
@click.option(
    "--lag-threshold",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Catch-up ends when the tail reads within this many seconds of the stream's tip.",
)
@click.option(
    "--turnover-at",
    metavar="TIME",
    help="Forward only SOURCE changes made before TIME (ISO 8601 or epoch ms): the cut-over "
    "time of a rollback producer replicating TARGET back with --turnover-role after.",
)
@click.option("--exit-when-ready", is_flag=True, help="Exit 0 at ready instead of tailing.")
@waiting_options
@common_options
@handle_errors
def run(
    *,
    source: str,
    target: str,
    create: bool,
    with_stream: bool,
    segments: int,
    rate: str,
    verify_text: str,
    backup: str | None,
    name: str | None,
    lag_threshold: float,
    turnover_at: str | None,
    exit_when_ready: bool,
    pickup_timeout: float,
    progress_interval: float,
    **params: Any,
) -> None:
    """Migrate SOURCE to TARGET (REGION/TABLE, HOST:PORT/TABLE or URL/TABLE), live.

    Prints one JSON line with "phase": "ready" when TARGET is safe to cut over to, then keeps
    replicating until SIGTERM/SIGINT or `replicator migrate stop NAME` (exit 0).
    Exit status: 2 refused (preflight) or bad usage, 3 failure; rerun the same command
    (same --name) to continue where it stopped.
    """
    cfg = setup(params)
    options = Options(
        create=create,
        segments=segment_plan(None, segments).segments,
        rate=Rate.parse(rate),
        verify=Verify.parse(verify_text),
        verify_segments=VERIFY_SEGMENTS,
        backup=parse_s3(backup) if backup else None,
        with_stream=with_stream,
        exit_when_ready=exit_when_ready,
        lag_threshold=lag_threshold,
        turnover_at=parse_time(turnover_at) if turnover_at else None,
        pickup_timeout=pickup_timeout,
        progress_interval=progress_interval,
    )
    if with_stream and not create:
        raise InvalidInputError("--with-stream goes with --create")
    src, dst = cfg.table(source), cfg.table(target, REPLICA)
    check(celery=True)
    store = MigrationStore(connection())
    chosen = name or default_name(src.location.spec, dst.location.spec)
    record = _record(store, chosen, src.location.spec, dst.location.spec)
    store.clear_stop(chosen)
    migrator = Migrator(store, record, src, dst, options)
    sys.exit(_drive(migrator, exit_when_ready))


def _record(store: MigrationStore, name: str, source: str, target: str) -> Migration:
    record = store.load(name)
    if record is None:
        return Migration(name=name, source=source, target=target)
    if (record.source, record.target) != (source, target):
        raise InvalidInputError(
            f"migration {name!r} copies {shown(record.source)} to {shown(record.target)}; "
            "give another --name for another pair of tables"
        )
    return record


def _raise_stopped(signum: int, _frame: Any) -> None:
    raise Stopped(signal.Signals(signum).name)


def _drive(migrator: Migrator, exit_when_ready: bool) -> int:
    signal.signal(signal.SIGTERM, _raise_stopped)
    signal.signal(signal.SIGINT, _raise_stopped)
    stopped = False
    try:
        migrator.run()
        click.echo(migrator.report())
        if not exit_when_ready:
            migrator.follow()
    except Stopped:
        stopped = True
    except MigrationFailed as exc:
        _finish(migrator, "failed", str(exc))
        click.echo(f"error: {exc}", err=True)
        return FAILURE
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if migrator.tail is not None and "ready" in migrator.record.done:
            migrator.tail.retire()  # the migration is over: no warnings about its tail
        elif migrator.tail is not None:
            migrator.tail.stop()
    if stopped:
        migrator.say("[migrate] stopping: the tail finished its page and checkpointed")
    _finish(migrator, "stopped")
    return OK


def _finish(migrator: Migrator, state: str, reason: str = "") -> None:
    migrator.record.state = state
    migrator.record.reason = reason
    migrator.store.save(migrator.record)
    migrator.say(f"[migrate] {migrator.record.name}: {migrator.record.state}")


@migrate.command("status")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per migration.")
@common_options
@handle_errors
def status(name: str | None, as_json: bool, **params: Any) -> None:
    """Show every migration (or NAME): phase, state, progress, lag, time per phase."""
    setup(params)
    check()
    store = MigrationStore(connection())
    chosen = [name] if name else store.names()
    records = [r for r in (store.load(n) for n in chosen) if r is not None]
    if name and not records:
        raise InvalidInputError(f"no migration named {name!r}")
    for record in records:
        click.echo(record.to_json() if as_json else _line(record))


def _line(record: Migration) -> str:
    done = len([p for p in PHASES if p in record.done])
    age = time.time() - record.updated
    lag = "-" if record.lag_seconds is None else f"{record.lag_seconds:.1f}s"
    counts = " ".join(f"{k}={v}" for k, v in sorted(record.counts.items()))
    reason = f" reason={record.reason}" if record.reason else ""
    return (
        f"{record.name} {shown(record.source)} -> {shown(record.target)} "
        f"phase={record.phase} ({done}/{len(PHASES)}) state={record.state} lag={lag} "
        f"updated={age:.0f}s ago {counts}{reason}"
    )


@migrate.command("stop")
@click.argument("name")
@common_options
@handle_errors
def stop(name: str, **params: Any) -> None:
    """Ask the running migration NAME to stop tailing and exit 0."""
    setup(params)
    check()
    store = MigrationStore(connection())
    if store.load(name) is None:
        raise InvalidInputError(f"no migration named {name!r}")
    store.request_stop(name)
    click.echo(f"asked migration {name} to stop")
