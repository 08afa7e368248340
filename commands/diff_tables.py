"""`diff-tables PRIMARY REPLICA`: find (and repair) every difference between two tables.

Prints ``[missing] KEY``, ``[extraneous] KEY``, ``[different] KEY`` (or ``[backfill] KEY``) as
segments confirm them, then ``[discrepancies] N`` and one JSON summary line. Exit status like
diff: 0 the tables agree (or every discrepancy was repaired), 1 discrepancies remain, 2 bad
usage or input, 3 failure.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import click

from cli.exits import DIFFERENT, FAILURE, OK, handle_errors
from cli.options import common_options, ignore_attribute_option, setup
from cli.transform_options import transform_from, transform_options
from commands.bulk.plan import Plan, plan, segment_options
from commands.bulk.run import execute
from commands.bulk.spec import BulkSpec, Outcome
from tasks.aws import dynamo
from tasks.coord.redis_conn import check
from tasks.core.config import settings
from tasks.core.errors import UnavailableError
from tasks.core.locations import REPLICA, shown
from tasks.diff.match import KINDS, discrepancies
from tasks.diff.segment import DiffOptions


class Printer:
    """Prints each record's tag line; writes discrepancies to the --report file."""

    def __init__(self, report: IO[str] | None) -> None:
        self.report = report

    def __call__(self, line: str) -> None:
        entry = json.loads(line)
        key = json.dumps(entry["key"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        click.echo(f"[{entry['kind']}] {key}")
        if self.report is not None and entry["kind"] in KINDS:
            self.report.write(line + "\n")
            self.report.flush()


def summary(options: DiffOptions, chosen: Plan, outcome: Outcome) -> dict[str, Any]:
    totals = outcome.totals
    found = {kind: totals.get(kind, 0) for kind in KINDS}
    compared = totals.get("compared", 0)
    return {
        "primary": shown(options.primary),
        "replica": shown(options.replica),
        "job": outcome.job.id,
        "mode": chosen.mode,
        "segments": chosen.segments,
        "segment": chosen.segment,
        "scanned": totals.get("scanned", 0),
        "compared": compared,
        **found,
        "discrepancies": sum(found.values()),
        "repaired": {kind: totals.get(f"repaired_{kind}", 0) for kind in KINDS},
        "repair_failed": totals.get("repair_failed", 0),
        "backfilled": totals.get("backfilled", 0),
        "backfill_failed": totals.get("backfill_failed", 0),
        "reads": totals.get("reads", 0),
        "reads_per_key": round(totals.get("reads", 0) / compared, 3) if compared else None,
        "failed_segments": {str(k): v for k, v in sorted(outcome.failures.items())},
        "seconds": round(outcome.seconds, 3),
    }


def exit_status(result: Mapping[str, Any]) -> int:
    if result["failed_segments"]:
        return FAILURE
    unrepaired = result["discrepancies"] - sum(result["repaired"].values())
    return DIFFERENT if unrepaired or result["backfill_failed"] else OK


def _describe(totals: Mapping[str, int]) -> str:
    found = discrepancies(totals)
    return (
        f"scanned={totals.get('scanned', 0)} compared={totals.get('compared', 0)} "
        f"discrepancies={found}"
    )


def _check_inputs(options: DiffOptions, chosen: Plan) -> None:
    """Fail early, with exit 2 or 3, on what every segment would fail on."""
    cfg = settings()
    dynamo.same_schema(cfg.table(options.primary), cfg.table(options.replica, REPLICA))
    needs_redis = options.repair or options.backfill or options.rate
    if needs_redis and chosen.mode != "fanout":
        try:
            check()
        except UnavailableError as exc:
            raise UnavailableError(
                f"{exc}: --repair and --backfill use Redis for the stale-write guard, and "
                "--rate for its shared token bucket"
            ) from exc


@click.command()
@click.argument("primary")
@click.argument("replica")
@click.option(
    "--repair",
    is_flag=True,
    help="Put the primary's item on the replica, or delete the extraneous one.",
)
@click.option(
    "--backfill",
    is_flag=True,
    help="Copy every primary item to the replica without comparing (writes by itself).",
)
@ignore_attribute_option
@click.option(
    "--report",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write one JSON line per discrepancy to this file.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="N",
    help="Cap item reads per second across all workers (token bucket in Redis).",
)
@click.option(
    "--page-size", type=click.IntRange(min=1), metavar="N", help="Items per scan page (Limit)."
)
@click.option(
    "--local",
    is_flag=True,
    hidden=True,
    help="The original's flag for HOST:PORT/TABLE; accepted, no longer needed.",
)
@transform_options
@segment_options
@common_options
@handle_errors
def main(
    *,
    primary: str,
    replica: str,
    repair: bool,
    backfill: bool,
    ignore: tuple[str, ...],
    report: Path | None,
    rate: float | None,
    page_size: int | None,
    segment: int | None,
    segments: int | None,
    pickup_timeout: float,
    progress_interval: float,
    local: bool,
    **params: Any,
) -> None:
    """Compare PRIMARY and REPLICA (REGION/TABLE, HOST:PORT/TABLE or URL/TABLE).

    Exit status: 0 the tables agree (or every discrepancy was repaired), 1 discrepancies
    remain, 2 bad usage or input, 3 failure.
    """
    del local  # HOST:PORT/TABLE locations are recognised by their form
    cfg = setup(params)
    chosen = plan(segment, segments)
    specs = cfg.location(primary).spec, cfg.location(replica).spec
    shape = transform_from(params, cfg.table(primary))
    options = DiffOptions(*specs, ignore, repair, backfill, page_size, rate)
    options = replace(options, transform=None if shape.empty else shape.to_params())
    _check_inputs(options, chosen)
    with report.open("w", encoding="utf-8") if report else nullcontext() as out:
        outcome = execute(chosen, _spec(options, Printer(out)), pickup_timeout, progress_interval)
    result = summary(options, chosen, outcome)
    for number, reason in result["failed_segments"].items():
        click.echo(f"error: segment {number} failed: {reason}", err=True)
    click.echo(f"[discrepancies] {result['discrepancies']}")
    click.echo(json.dumps(result, sort_keys=True))
    sys.exit(exit_status(result))


def _spec(options: DiffOptions, printer: Printer) -> BulkSpec:
    return BulkSpec(kind="diff", params=options.to_params(), on_record=printer, describe=_describe)
