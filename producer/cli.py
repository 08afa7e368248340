"""`python -m producer`: tail change streams and enqueue replicate / backup tasks.

One table pair from the flags (``--primary`` ...), or every pipeline of a pipelines file
(``--config FILE``); either way the pipelines run as one fleet (``producer.fleet``).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

import click

from cli.exits import handle_errors
from cli.options import common_options, config_option, metrics_options, setup
from cli.transform_options import spec_from_flags, transform_options
from producer import plans
from producer.fleet import Fleet
from producer.metrics import ProducerCollector, ProducerView, view_of
from producer.poller import (
    DEFAULT_IDLE_WAIT,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_READERS,
    PollerOptions,
)
from tasks.coord.redis_conn import check
from tasks.core import pipelines as pipelines_file
from tasks.core.errors import ConfigurationError
from tasks.core.pipelines import Pipeline
from tasks.metrics.serve import serve

FLAG_OPTIONS = (
    "primary",
    "replica",
    "backup",
    "stream_arn",
    "kinesis_stream",
    "turnover_role",
    "turnover_at",
)


def _flags_pipeline(params: dict[str, Any]) -> Pipeline:
    """The single-table flags, as one pipeline."""
    problems = []
    if not params["primary"]:
        problems.append("give --primary TABLE, or --config FILE")
    if not params["replica"] and not params["backup"]:
        problems.append("give --replica LOCATION and/or --backup s3://BUCKET/PREFIX")
    if bool(params["turnover_role"]) != bool(params["turnover_at"]):
        problems.append("--turnover-role and --turnover-at go together")
    if params["stream_arn"] and params["kinesis_stream"]:
        problems.append("give --stream-arn or --kinesis-stream, not both")
    if problems:
        raise ConfigurationError("; ".join(problems))
    return Pipeline(
        name=params["name"] or params["primary"],
        checkpoint=params["name"],
        start=params["start"],
        skip_ttl_deletes=params["skip_ttl_deletes"],
        page_limit=params["page_limit"],
        transform=spec_from_flags(params),  # checked with the tables
        origin="flags",
        **{k: params[k] for k in FLAG_OPTIONS},
    )


def _file_pipelines(path: str) -> list[Pipeline]:
    """The file's pipelines and what its discover rules select now."""
    return plans.resolve(pipelines_file.load(path))


def _check_file(path: str, pipelines: Sequence[Pipeline]) -> None:
    problems = plans.check_all(pipelines, path)
    if problems:
        raise ConfigurationError("\n".join(problems))


def _stop_on_signals(stop: threading.Event, reload: threading.Event) -> None:
    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: reload.set())


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@config_option("A pipelines file: run every pipeline it lists (instead of the flags of one table).")
@click.option("--primary", help="The table whose changes are replicated.")
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
    envvar="REPLICATOR_POLL_INTERVAL",
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
@metrics_options
@transform_options
@handle_errors
def main(config_path: str | None, **params: Any) -> None:
    """Tail PRIMARY's change stream (or those of every pipeline of --config FILE) and enqueue
    per-key replicate (and backup) tasks."""
    setup(params)
    stop, reload = threading.Event(), threading.Event()
    _stop_on_signals(stop, reload)  # a SIGTERM while starting is a clean stop too
    load = _loader(config_path, params)
    pipelines = load()
    check(celery=True)
    if config_path:
        _check_file(config_path, pipelines)
    else:
        plans.check(plans.plan(pipelines[0]))
    options = PollerOptions(
        idle_sleep=params["poll_interval"],
        readers=params["readers"],
        lease_seconds=params["lease_seconds"],
    )
    fleet = Fleet(load, options, stop, reload)
    if params["metrics_port"]:
        _serve_metrics(fleet, params)
    fleet.run(pipelines)


def _loader(config_path: str | None, params: dict[str, Any]) -> Callable[[], list[Pipeline]]:
    if config_path:
        if params["primary"]:
            raise ConfigurationError("give --config FILE or --primary TABLE, not both")
        return lambda: _file_pipelines(config_path)
    pipeline = _flags_pipeline(params)
    return lambda: [pipeline]


def _serve_metrics(fleet: Fleet, params: dict[str, Any]) -> None:
    def views() -> list[ProducerView]:
        return [view_of(running.poller) for running in fleet.running()]

    serve(params["metrics_port"], ProducerCollector(views), params["metrics_address"])
