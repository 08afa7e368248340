"""Where a bulk command's segments run, from its segment options.

* none                          all segments in this process, a thread each (no broker needed);
* ``--segments N``              a job record in Redis, N tasks on the ``bulk`` queue, wait;
* ``--segment I --segments N``  only segment I, in this process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from tasks.core.errors import InvalidInputError

LOCAL_SEGMENTS = 4


@dataclass(frozen=True)
class Plan:
    """Where the segments run: ``local`` (all, threads), ``one`` (segment I here), ``fanout``."""

    mode: str
    segments: int
    segment: int | None = None
    only: tuple[int, ...] = ()  # a sample of the segments (migrate's verify), when not empty

    @property
    def wanted(self) -> list[int]:
        if self.segment is not None:
            return [self.segment]
        return list(self.only) if self.only else list(range(self.segments))


def plan(segment: int | None, segments: int | None) -> Plan:
    """Validate the segment options; InvalidInputError (exit 2) names what is wrong."""
    if segments is not None and segments < 1:
        raise InvalidInputError(f"--segments must be at least 1 (got {segments})")
    if segment is not None:
        if segments is None:
            raise InvalidInputError("--segment I needs --segments N (segment I of N)")
        if not 0 <= segment < segments:
            raise InvalidInputError(
                f"--segment must be between 0 and {segments - 1} for --segments {segments} "
                f"(got {segment})"
            )
        return Plan("one", segments, segment)
    if segments is None:
        return Plan("local", LOCAL_SEGMENTS)
    return Plan("fanout", segments)


def segment_options(func: Any) -> Any:
    """--segment, --segments, and the ``waiting_options``."""
    options = [
        click.option("--segment", type=int, help="Run only this segment (0-based) here."),
        click.option(
            "--segments",
            type=int,
            help="Total segments; alone, fan them out as Celery tasks on the bulk queue.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return waiting_options(func)


def waiting_options(func: Any) -> Any:
    """--pickup-timeout and --progress-interval: how a command waits for its segments."""
    options = [
        click.option(
            "--pickup-timeout",
            type=click.FloatRange(min=0.5),
            default=5.0,
            envvar="REPLICATOR_PICKUP_TIMEOUT",
            show_default=True,
            help="Seconds to wait for a worker to take a segment before giving up.",
        ),
        click.option(
            "--progress-interval",
            type=click.FloatRange(min=0.1),
            default=10.0,
            envvar="REPLICATOR_PROGRESS_INTERVAL",
            show_default=True,
            help="Seconds between [progress] lines when not on a terminal.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func
