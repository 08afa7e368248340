"""What the backup and restore commands share: running a bulk job and reporting its end."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import click

from cli.exits import FAILURE, OK
from commands.bulk.plan import Plan, plan
from commands.bulk.run import execute
from commands.bulk.spec import BulkSpec, Outcome


@dataclass(frozen=True)
class Segments:
    """Where a job's segments run (from --segment/--segments) and how the wait is reported."""

    plan: Plan
    pickup_timeout: float
    progress_interval: float


def segments_from(params: dict[str, Any]) -> Segments:
    """Take the segment options out of a command's parameters, validated (exit 2)."""
    chosen = plan(params.pop("segment"), params.pop("segments"))
    return Segments(chosen, params.pop("pickup_timeout"), params.pop("progress_interval"))


def run_job(
    kind: str,
    params: Mapping[str, Any],
    segments: Segments,
    on_record: Callable[[str], None],
) -> Outcome:
    """Run a backup/restore job's segments as planned; wait for the end."""
    spec = BulkSpec(kind=kind, params=params, on_record=on_record)
    return execute(segments.plan, spec, segments.pickup_timeout, segments.progress_interval)


def print_failed_key(record: str) -> None:
    """Print a failed-key record as ``[failed] KEY reason``."""
    data = json.loads(record)
    if "failed" not in data:
        return
    key = json.dumps(data["failed"], separators=(",", ":"), sort_keys=True)
    click.echo(f"[failed] {key} {data['reason']}")


def finish(outcome: Outcome, extra: Mapping[str, Any] | None = None) -> None:
    """Print the JSON summary; exit 3 when a segment or a key failed, else 0."""
    report(outcome, extra)
    failed = outcome.failures or outcome.totals.get("failed", 0)
    sys.exit(FAILURE if failed else OK)


def report(outcome: Outcome, extra: Mapping[str, Any] | None = None) -> None:
    """Print the failed segments (stderr) and the JSON summary line."""
    for segment, error in sorted(outcome.failures.items()):
        click.echo(f"error: segment {segment} failed: {error}", err=True)
    summary = {
        "job": outcome.job.id,
        "segments": outcome.segments,
        **(extra or {}),
        **outcome.totals,
        "failed_segments": len(outcome.failures),
        "seconds": round(outcome.seconds, 3),
    }
    click.echo(json.dumps(summary, sort_keys=True))
