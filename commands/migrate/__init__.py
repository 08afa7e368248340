"""`replicator migrate SOURCE TARGET`: a live table migration as one resumable job.

``replicator migrate [run] SOURCE TARGET [--create] [--segments N] [--rate R]
[--verify full|sample:P] [--backup s3://...] [--name NAME]`` runs the phases of
``commands.migrate.phases`` with a heartbeat beside them (``commands.migrate.heartbeat``), and
leaves the record ``refused``, ``failed`` or ``stopped``; ``replicator migrate status|stop|forget``
are in ``commands.migrate.operate``.

Exit status: 0 ready (and stopped cleanly), 2 refused by preflight or bad usage, 3 failure.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import signal
import sys
import time
from typing import Any, TypeVar

import click

from cli.exits import OK, USAGE, exit_code, handle_errors
from cli.options import common_options, setup
from cli.transform_options import transform_from, transform_options
from commands.bulk.plan import plan as segment_plan
from commands.bulk.plan import waiting_options
from commands.migrate import operate
from commands.migrate.heartbeat import Heartbeat
from commands.migrate.phases import Migrator, Options, Verify
from commands.migrate.record import PHASES, Migration, MigrationStore
from tasks.aws.capacity import Rate
from tasks.coord.redis_conn import check, connection
from tasks.core.errors import InvalidInputError, ReplicatorError
from tasks.core.locations import REPLICA, parse_s3, shown
from tasks.core.times import parse_time

DEFAULT_SEGMENTS = 8
VERIFY_SEGMENTS = 100
"""Scan segments of a verify pass; ``sample:P`` runs P per cent of them."""


class Stopped(BaseException):
    """SIGTERM or SIGINT: stop after the step in hand (a running bulk job is left to finish,
    so that a rerun waits for it again)."""


LOCATION_FORMS = """
\b
SOURCE and TARGET are table locations:
  REGION/TABLE                  a table in an AWS region (us-east-1/orders)
  HOST:PORT/TABLE               a plain-HTTP local endpoint (localhost:8000/orders)
  http(s)://HOST[:PORT]/TABLE   any endpoint URL
  local/TABLE                   the endpoint in AWS_ENDPOINT_URL_DYNAMODB
"""


C = TypeVar("C", bound=click.Command)


def _with_locations(command: C) -> C:
    """Add the location forms to a command's help (``migrate`` and ``migrate run``)."""
    command.help = f"{inspect.cleandoc(command.help or '')}\n{LOCATION_FORMS}"
    return command


class _MigrateGroup(click.Group):
    """``migrate SOURCE TARGET`` runs a migration; ``migrate status|stop`` operate one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@_with_locations
@click.group("migrate", cls=_MigrateGroup)
def migrate() -> None:
    """Migrate a live table: copy, catch up, verify, then follow until cut-over.

    \b
    replicator migrate [run] SOURCE TARGET ...   (see `replicator migrate run --help`)
    replicator migrate status [NAME] [--json]
    replicator migrate stop NAME
    replicator migrate forget NAME
    """


def default_name(source: str, target: str) -> str:
    digest = hashlib.sha256(f"{source}|{target}".encode()).hexdigest()[:12]
    return f"migrate-{digest}"


@_with_locations
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
@click.option(
    "--backfill",
    "backfill_mode",
    type=click.Choice(["scan", "export"]),
    default="scan",
    show_default=True,
    help="How SOURCE's items are copied: a Scan (read capacity, within the stream's retention), "
    "or DynamoDB's export to S3 (--export-to; no read capacity; the tail starts after the load).",
)
@click.option(
    "--export-to",
    metavar="s3://BUCKET/PREFIX",
    help="With --backfill export: where DynamoDB writes the export.",
)
@click.option(
    "--kinesis-stream",
    metavar="NAME|ARN",
    help="Tail the Kinesis data stream SOURCE writes its changes to (Kinesis Data Streams for "
    "DynamoDB) instead of its DynamoDB stream: the backfill must end within that stream's "
    "retention (up to a year) instead of 24 h.",
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
@click.option(
    "--exit-when-ready",
    is_flag=True,
    help="Exit 0 at ready instead of following the stream: replication stops there.",
)
@click.option(
    "--verbose",
    is_flag=True,
    help="Also log the tail's own lines: leases, shards, its periodic stats.",
)
@transform_options
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
    backfill_mode: str,
    export_to: str | None,
    kinesis_stream: str | None,
    backup: str | None,
    name: str | None,
    lag_threshold: float,
    turnover_at: str | None,
    exit_when_ready: bool,
    verbose: bool,
    pickup_timeout: float,
    progress_interval: float,
    **params: Any,
) -> None:
    """Migrate SOURCE to TARGET, live.

    Prints one JSON line with "phase": "ready" when TARGET is safe to cut over to, then keeps
    replicating until SIGTERM/SIGINT or `replicator migrate stop NAME` (exit 0). With
    --exit-when-ready it exits at ready instead: replication stops there, so use it only when
    nothing writes SOURCE any more (or another producer replicates it).
    Exit status: 2 refused (preflight) or bad usage, 3 failure; rerun the same command
    (same --name) to continue where it stopped.
    """
    cfg = setup(params)
    if not verbose:  # the tail is the producer's poller: its info lines are its own business
        logging.getLogger("producer").setLevel(logging.WARNING)
    options = Options(
        create=create,
        segments=segment_plan(None, segments).segments,
        rate=Rate.parse(rate),
        verify=Verify.parse(verify_text),
        verify_segments=VERIFY_SEGMENTS,
        backup=parse_s3(backup) if backup else None,
        export_to=parse_s3(export_to) if export_to else None,
        kinesis_stream=kinesis_stream,
        transform=transform_from(params, cfg.table(source)),
        with_stream=with_stream,
        exit_when_ready=exit_when_ready,
        lag_threshold=lag_threshold,
        turnover_at=parse_time(turnover_at) if turnover_at else None,
        pickup_timeout=pickup_timeout,
        progress_interval=progress_interval,
    )
    if with_stream and not create:
        raise InvalidInputError("--with-stream goes with --create")
    if (backfill_mode == "export") != (export_to is not None):
        raise InvalidInputError("--backfill export and --export-to s3://BUCKET/PREFIX go together")
    src, dst = cfg.table(source), cfg.table(target, REPLICA)
    check(celery=True)
    store = MigrationStore(connection())
    chosen = name or default_name(src.location.spec, dst.location.spec)
    record, earlier = _record(store, chosen, src.location.spec, dst.location.spec)
    store.clear_stop(chosen)
    migrator = Migrator(store, record, src, dst, options)
    _announce(migrator, earlier)
    sys.exit(_drive(migrator, exit_when_ready))


def _record(
    store: MigrationStore, name: str, source: str, target: str
) -> tuple[Migration, str | None]:
    """The migration's record (new, or an earlier run's) and the state it was left in.

    An attempt that a dead command left open is closed at its last heartbeat."""
    record = store.load(name)
    if record is None:
        return Migration(name=name, source=source, target=target), None
    if (record.source, record.target) != (source, target):
        raise InvalidInputError(
            f"migration {name!r} copies {shown(record.source)} to {shown(record.target)}; "
            "give another --name for another pair of tables"
        )
    earlier = store.state(record)
    record.cut(store.last_beat(name) or record.updated)
    return record, earlier


def _announce(migrator: Migrator, earlier: str | None) -> None:
    """The first lines: which migration, how to watch and stop it, what a rerun does."""
    record = migrator.record
    migrator.say(
        f"[migrate] {record.name}: {shown(record.source)} -> {shown(record.target)}; "
        f"watch: replicator migrate status {record.name}; "
        f"stop: replicator migrate stop {record.name}"
    )
    if earlier is None:
        return
    if "ready" in record.done:
        then = "every phase is done: preflight again, then resume the tail from its checkpoints"
    else:
        then = f"preflight again, then continue at {_first_left(record)}"
    migrator.say(f"[migrate] {record.name} was {earlier} at {record.phase}: {then}")


def _first_left(record: Migration) -> str:
    return next((p for p in PHASES if p not in record.done), "ready")


def _raise_stopped(signum: int, _frame: Any) -> None:
    raise Stopped(signal.Signals(signum).name)


def _drive(migrator: Migrator, exit_when_ready: bool) -> int:
    """Run the phases (and follow) with the heartbeat on; the record ends refused, failed or
    stopped, and the exit status says which."""
    signal.signal(signal.SIGTERM, _raise_stopped)
    signal.signal(signal.SIGINT, _raise_stopped)
    with Heartbeat(migrator.store, migrator.record.name):
        try:
            migrator.run()
            click.echo(migrator.report())
            if not exit_when_ready:
                migrator.follow()
        except Stopped:
            migrator.say("[migrate] stopping: the tail finishes its page and checkpoints")
        except ReplicatorError as exc:
            return _failed(migrator, exc)
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            _end_tail(migrator)
        _finish(migrator, "stopped")
    return OK


def _end_tail(migrator: Migrator) -> None:
    if migrator.tail is not None and "ready" in migrator.record.done:
        migrator.tail.retire()  # the migration is over: no warnings about its tail
    elif migrator.tail is not None:
        migrator.tail.stop()


def _failed(migrator: Migrator, exc: ReplicatorError) -> int:
    """``refused`` when preflight said no (exit 2), ``failed`` else; one ``error:`` line."""
    code = exit_code(exc)
    refused = migrator.record.phase == "preflight" and code == USAGE
    _finish(migrator, "refused" if refused else "failed", str(exc))
    click.echo(f"error: {exc}", err=True)
    return code


def _finish(migrator: Migrator, state: str, reason: str = "") -> None:
    record = migrator.record
    record.cut(time.time())
    record.state, record.reason = state, reason
    migrator.store.save(record)
    migrator.say(f"[migrate] {record.name}: {state}")


for _command in (operate.status, operate.stop, operate.forget):
    migrate.add_command(_command)
