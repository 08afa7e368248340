"""`python -m producer`: tail a table's change stream and enqueue replicate / backup tasks."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from typing import Any

import click

from commands.exits import handle_errors
from commands.options import common_options, setup
from producer.enqueue import Enqueuer, Target
from producer.filters import RecordFilter
from producer.metrics import ProducerCollector, ProducerView
from producer.poller import (
    DEFAULT_IDLE_WAIT,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_READERS,
    Poller,
    PollerOptions,
)
from producer.sources import Position, Source
from producer.sources.dynamodb_streams import DynamoDBStreamsSource
from producer.sources.kinesis import KinesisSource
from tasks import names
from tasks.aws import dynamo
from tasks.coord.redis_conn import check, connection
from tasks.core.config import settings
from tasks.core.errors import ConfigurationError
from tasks.core.locations import REPLICA, Table, parse_s3
from tasks.core.times import parse_time
from tasks.metrics.serve import serve


@dataclass(frozen=True)
class Plan:
    primary: Table
    targets: tuple[Target, ...]
    start: Position
    record_filter: RecordFilter


def _start_position(text: str) -> tuple[Position, float | None]:
    lowered = text.lower()
    if lowered in ("trim-horizon", "trim_horizon"):
        return Position("TRIM_HORIZON"), None
    if lowered == "latest":
        return Position("LATEST"), None
    moment = parse_time(text)
    return Position("AT_TIMESTAMP", timestamp=moment), moment


def _plan(params: dict[str, Any]) -> Plan:
    problems = []
    if not params["replica"] and not params["backup"]:
        problems.append("give --replica LOCATION and/or --backup s3://BUCKET/PREFIX")
    if bool(params["turnover_role"]) != bool(params["turnover_at"]):
        problems.append("--turnover-role and --turnover-at go together")
    if params["stream_arn"] and params["kinesis_stream"]:
        problems.append("give --stream-arn or --kinesis-stream, not both")
    if problems:
        raise ConfigurationError("; ".join(problems))
    cfg = settings()
    primary = cfg.table(params["primary"])
    targets = []
    if params["replica"]:
        targets.append(Target.replica(cfg.location(params["replica"])))
    if params["backup"]:
        targets.append(Target.backup(parse_s3(params["backup"])))
    start, not_before = _start_position(params["start"])
    turnover_at = parse_time(params["turnover_at"]) if params["turnover_at"] else None
    record_filter = RecordFilter(
        params["turnover_role"], turnover_at, params["skip_ttl_deletes"], not_before
    )
    return Plan(primary, tuple(targets), start, record_filter)


def _source(plan: Plan, params: dict[str, Any]) -> Source:
    if params["kinesis_stream"]:
        return KinesisSource(plan.primary, params["kinesis_stream"])
    return DynamoDBStreamsSource(plan.primary, params["stream_arn"])


def _check_tables(plan: Plan) -> None:
    dynamo.describe(plan.primary)
    for target in plan.targets:
        if target.task == names.REPLICATE:
            dynamo.same_schema(plan.primary, settings().table(target.arg, REPLICA))


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.option("--primary", required=True, help="The table whose changes are replicated.")
@click.option("--replica", help="Replica table location.")
@click.option("--backup", help="Incremental backup location s3://BUCKET/PREFIX.")
@click.option("--stream-arn", help="DynamoDB stream ARN (default: the table's latest stream).")
@click.option("--kinesis-stream", help="Read a Kinesis stream (name or ARN) of change records.")
@click.option(
    "--start",
    default="trim-horizon",
    show_default=True,
    help="Where to start without a checkpoint: trim-horizon, latest, or a time.",
)
@click.option(
    "--turnover-role",
    type=click.Choice(["before", "after"]),
    help="Keep only changes created before / at-or-after --turnover-at.",
)
@click.option("--turnover-at", help="Cut-over time (ISO 8601 or epoch milliseconds).")
@click.option("--skip-ttl-deletes", is_flag=True, help="Do not propagate TTL deletions.")
@click.option(
    "--name",
    help="Checkpoint name (default: derived from the stream and targets); producers with the "
    "same name share the stream's shards.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.01, 60),
    default=DEFAULT_IDLE_WAIT,
    show_default=True,
    help="Seconds before a shard at its tip is read again (a shard is read at most 5 times a "
    "second).",
)
@click.option(
    "--readers",
    type=click.IntRange(1, 1024),
    default=DEFAULT_READERS,
    envvar="REPLICATOR_PRODUCER_READERS",
    show_default=True,
    help="Shards read at once (threads).",
)
@click.option(
    "--lease-seconds",
    type=click.FloatRange(1, 600),
    default=DEFAULT_LEASE_SECONDS,
    envvar="REPLICATOR_LEASE_SECONDS",
    show_default=True,
    help="Shard lease time: a stopped or frozen producer's shards are taken over after it.",
)
@click.option(
    "--page-limit",
    type=click.IntRange(1, 10000),
    default=1000,
    show_default=True,
    help="Records per GetRecords call.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=0,
    envvar="REPLICATOR_METRICS_PORT",
    show_default=True,
    help="Serve Prometheus metrics on this port (0: off).",
)
@click.option(
    "--metrics-address",
    default="0.0.0.0",
    envvar="REPLICATOR_METRICS_ADDRESS",
    show_default=True,
    help="Address the metrics endpoint listens on.",
)
@handle_errors
def main(**params: Any) -> None:
    """Tail PRIMARY's change stream and enqueue per-key replicate (and backup) tasks."""
    cfg = setup(params)
    stop = threading.Event()
    _stop_on_signals(stop)  # a SIGTERM while starting is a clean stop too
    plan = _plan(params)
    check(celery=True)
    _check_tables(plan)
    source = _source(plan, params)
    from worker.app import app

    enqueuer = Enqueuer(
        app, connection(), plan.primary.location.spec, plan.targets, cfg.keys_per_message
    )
    consumer = params["name"] or "|".join([source.stream_id, *(t.name for t in plan.targets)])
    options = PollerOptions(
        start=plan.start,
        page_limit=params["page_limit"],
        idle_sleep=params["poll_interval"],
        readers=params["readers"],
        lease_seconds=params["lease_seconds"],
    )
    poller = Poller(source, consumer, enqueuer, plan.record_filter, options, stop=stop)
    if params["metrics_port"]:
        _serve_metrics(poller, params)
    poller.run()
    if poller.reader.failure is not None:
        raise poller.reader.failure


def _serve_metrics(poller: Poller, params: dict[str, Any]) -> None:
    view = ProducerView(
        stream=poller.source.stream_id,
        producer=poller.owner,
        retention=poller.source.retention_seconds,
        stats=lambda: poller.stats,
        checkpoint_ages=poller.checkpoints.ages,
        leases=lambda: poller.keeper.last_snapshot,
        ready_shards=lambda: len(poller.graph.ready()),
    )
    serve(params["metrics_port"], ProducerCollector(view), params["metrics_address"])
