"""`replicator verify`: prove, all the time, that each replica equals t(its primary).

``replicator verify [run] PRIMARY REPLICA [--every 24h] [--rate 5%] [--repair]
[--ignore-attributes a,b] [transform flags]`` or ``replicator verify --config FILE`` (every
pipeline of the file with a replica, each with its ``verify = { ... }``) sweeps until stopped
(SIGTERM, SIGINT), pass after pass (``commands.verify.sweep``), fanned out to the workers;
``replicator verify report NAME`` lists the drift a pass found and did not repair.

After each pass one JSON line on stdout: ``pipeline``, ``pass``, ``items``, ``missing``,
``different``, ``extraneous``, ``repaired``, ``seconds``, ``coverage`` (and ``reads``).
Exit status: 0 stopped (or ``--passes`` done), 2 bad usage or input, 3 failure.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from typing import Any

import click
import redis

from cli.exits import handle_errors
from cli.options import (
    common_options,
    config_option,
    ignore_attribute_option,
    metrics_options,
    setup,
)
from cli.transform_options import transform_from, transform_options
from commands.verify.metrics import VerifyCollector
from commands.verify.sweep import Sweep, Verified
from producer import plans
from tasks.aws import definitions
from tasks.aws.capacity import Rate
from tasks.coord.redis_conn import check, connection
from tasks.core import logs
from tasks.core import pipelines as pipelines_file
from tasks.core.config import settings
from tasks.core.errors import ConfigurationError, InvalidInputError, TransientError
from tasks.core.locations import REPLICA
from tasks.metrics.serve import serve
from tasks.verify import state
from tasks.verify.settings import DEFAULT_EVERY, DEFAULT_RATE, DEFAULT_SEGMENTS, VerifySettings

log = logs.get("verify")
TICK_SECONDS = 0.25


class _VerifyGroup(click.Group):
    """``verify PRIMARY REPLICA`` (or ``verify --config FILE``) runs; ``verify report`` reads."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("verify", cls=_VerifyGroup)
def verify() -> None:
    """Continuously verify replicas: sweep, confirm drift, repair it (or report it).

    \b
    replicator verify [run] PRIMARY REPLICA ...   (see `replicator verify run --help`)
    replicator verify [run] --config FILE
    replicator verify report NAME [--pass N]
    """


@verify.command("run")
@click.argument("primary", required=False)
@click.argument("replica", required=False)
@config_option("Verify every pipeline of this pipelines file that has a replica.")
@click.option(
    "--name",
    help="The pipeline's name in status, metrics and reports (default: PRIMARY as given, the "
    "name python -m producer gives the pair).",
)
@click.option(
    "--every",
    default=DEFAULT_EVERY,
    show_default=True,
    metavar="DURATION",
    help="How long a whole pass takes (30s, 15m, 24h): its segments are spread over it.",
)
@click.option(
    "--rate",
    default=DEFAULT_RATE,
    show_default=True,
    metavar="R",
    help="Item reads per second over both tables at most, or a share of their read capacity.",
)
@click.option(
    "--repair/--no-repair",
    default=None,
    help="Send confirmed drift through the replicate task (default: only with --config, for "
    "pipelines that replicate).",
)
@click.option(
    "--segments",
    type=click.IntRange(min=1),
    default=DEFAULT_SEGMENTS,
    show_default=True,
    help="Scan segments of a pass (Celery tasks on the bulk queue).",
)
@click.option(
    "--passes",
    type=click.IntRange(min=1),
    help="Stop after this many full passes (default: run until stopped).",
)
@metrics_options
@ignore_attribute_option
@transform_options
@common_options
@handle_errors
def run(
    primary: str | None,
    replica: str | None,
    config_path: str | None,
    name: str | None,
    passes: int | None,
    metrics_port: int,
    metrics_address: str,
    **params: Any,
) -> None:
    """Sweep PRIMARY and REPLICA (or every pipeline of --config FILE) until stopped."""
    setup(params)
    if config_path:
        if primary or replica:
            raise InvalidInputError("give --config FILE or PRIMARY REPLICA, not both")
        pipelines = _from_file(config_path, params)
    elif primary and replica:
        pipelines = [_from_flags(primary, replica, name, params)]
    else:
        raise InvalidInputError("give PRIMARY REPLICA, or --config FILE")
    check(celery=True)
    client, owner = connection(), state.verifier_id()
    sweeps = [Sweep(p, client, owner, click.echo) for p in pipelines]
    if metrics_port:
        serve(metrics_port, VerifyCollector(sweeps), metrics_address)
    _loop(sweeps, passes)


def _settings(params: dict[str, Any]) -> VerifySettings:
    return VerifySettings.of(
        params.pop("every"),
        params.pop("rate"),
        params.pop("repair"),
        params.pop("ignore"),
        params.pop("segments"),
    )


def _from_flags(primary: str, replica: str, name: str | None, params: dict[str, Any]) -> Verified:
    cfg = settings()
    chosen = _settings(params)
    shape = transform_from(params, cfg.table(primary))
    specs = cfg.location(primary).spec, cfg.location(replica).spec
    rate, item_bytes = _budget(chosen.rate, *specs)
    return Verified(name or primary, *specs, shape, chosen, rate, chosen.repairs(False), item_bytes)


def _from_file(path: str, params: dict[str, Any]) -> list[Verified]:
    flags = {k: params.pop(k) for k in ("every", "rate", "repair", "ignore", "segments")}
    flags.pop("ignore")
    if any(
        params.get(k) for k in ("exclude_attributes", "filter_expression", "transform_callable")
    ):
        raise InvalidInputError("with --config, a pipeline's transform is the file's")
    found = []
    for pipeline in plans.resolve(pipelines_file.load(path)):
        if not pipeline.replica:
            continue
        cfg = settings()
        specs = cfg.location(pipeline.primary).spec, cfg.location(pipeline.replica).spec
        chosen = pipeline.verify
        rate, item_bytes = _budget(chosen.rate, *specs)
        found.append(
            Verified(
                pipeline.name,
                *specs,
                plans.shape(pipeline),
                chosen,
                rate,
                chosen.repairs(True),
                item_bytes,
            )
        )
    if not found:
        raise ConfigurationError(f"{path}: no pipeline has a replica to verify")
    return found


def _budget(rate: Rate, primary: str, replica: str) -> tuple[float, dict[str, float] | None]:
    """Item reads per second, and a share's planned item sizes (``Rate.item_bytes``)."""
    cfg = settings()
    if not rate.share:
        return rate.value, None
    src = definitions.describe(cfg.table(primary))
    dst = definitions.describe(cfg.table(replica, REPLICA))
    return rate.scan_items_per_second([src, dst]), rate.item_bytes(primary=src, replica=dst)


def _loop(sweeps: list[Sweep], passes: int | None) -> None:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    for sweep in sweeps:
        log.info(
            "verifier started",
            pipeline=sweep.pipeline.name,
            every=sweep.pipeline.settings.every,
            rate=round(sweep.pipeline.rate, 3),
            repair=sweep.pipeline.repair,
            transform=sweep.pipeline.transform.identity or None,
        )
    failures: dict[str, int] = {}
    try:
        while not stop.is_set():
            now = time.time()
            for sweep in sweeps:
                try:
                    sweep.tick(now)
                    failures.pop(sweep.pipeline.name, None)
                except (TransientError, redis.RedisError) as exc:
                    attempt = failures.get(sweep.pipeline.name, 0) + 1
                    failures[sweep.pipeline.name] = attempt
                    log.warning(
                        "verify step failed; retrying",
                        pipeline=sweep.pipeline.name,
                        attempt=attempt,
                        error=str(exc),
                    )
            if passes and all(s.passes_done >= passes for s in sweeps):
                return
            stop.wait(TICK_SECONDS)
    finally:
        for sweep in sweeps:
            with contextlib.suppress(TransientError, redis.RedisError):
                sweep.release()  # hand over at once (a killed verifier's lease just expires)


@verify.command("report")
@click.argument("name")
@click.option("--pass", "number", type=int, help="This pass (default: the last one with a report).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key.")
@common_options
@handle_errors
def report(name: str, number: int | None, as_json: bool, **params: Any) -> None:
    """The drift keys pipeline NAME's verifier confirmed and did not repair."""
    setup(params)
    check()
    client = connection()
    cursor, last = state.read(client, name)
    if cursor.number == 0 and last is None:
        raise InvalidInputError(f"no verifier has run pipeline {name!r}")
    candidates = [number] if number is not None else [cursor.number, cursor.number - 1]
    for wanted in candidates:
        entries = state.report(client, name, wanted)
        if entries or number is not None:
            break
    for entry in entries:
        if as_json:
            click.echo(json.dumps(entry, sort_keys=True, separators=(",", ":")))
        else:
            key = json.dumps(entry["key"], sort_keys=True, separators=(",", ":"))
            click.echo(f"[{entry['kind']}] {key}")
