"""Progress of a bulk job on stderr: one bar on a TTY, ``[progress]`` lines otherwise.

Both show the segments done, the running totals, and the segments retrying after a transient
failure with their reason: ``[progress]`` lines end with
``; retrying: segment 1 (retry 2: REASON)``; on a TTY the bar starts with ``1 retrying ·`` and
each new retry is printed above it as ``[retrying] segment 1 (retry 2: REASON)``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from commands.bulk.spec import BulkSpec
from tasks.jobs.model import DONE, FAILED, SegmentState, Snapshot

SHOWN_RETRYING = 2
REASON_CHARS = 120


class Reporter:
    """One progress bar over all segments on a TTY; ``[progress]`` lines every interval else.

    ``wanted`` are the numbers of the segments in the snapshots it is given, in order.
    """

    def __init__(self, spec: BulkSpec, wanted: Sequence[int], interval: float) -> None:
        self._spec, self._interval = spec, interval
        self._numbers, self._segments = list(wanted), len(wanted)
        self._started = self._last = time.monotonic()
        self._announced: set[tuple[int, int]] = set()
        self._bar: Progress | None = None
        if sys.stderr.isatty():
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                TimeElapsedColumn(),
                TextColumn("{task.fields[line]}"),
                console=Console(stderr=True),
            )
            self._bar.start()
            total = spec.estimate or self._segments
            self._task = self._bar.add_task(spec.kind, total=total, line="")

    def counts(self, snapshot: Snapshot) -> str:
        """Segments done (and how many of them failed), the totals and the rate."""
        totals = snapshot.totals
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = totals.get(self._spec.rate_field, 0) / elapsed
        failed = snapshot.count(FAILED)
        return (
            f"segments {snapshot.count(DONE, FAILED)}/{self._segments} done "
            + (f"({failed} failed) " if failed else "")
            + f"{self._spec.describe(totals)} {rate:.0f} {self._spec.rate_field}/s"
        )

    def line(self, snapshot: Snapshot) -> str:
        """A ``[progress]`` line's text: the counts, then the segments retrying and why."""
        retrying = self._retrying(snapshot)
        if not retrying:
            return self.counts(snapshot)
        shown = ", ".join(_retry(n, s) for n, s in retrying[:SHOWN_RETRYING])
        more = len(retrying) - SHOWN_RETRYING
        return f"{self.counts(snapshot)}; retrying: {shown}" + (
            f" and {more} more" if more > 0 else ""
        )

    def update(self, snapshot: Snapshot) -> None:
        if self._bar is not None:
            self._update_bar(self._bar, snapshot)
            return
        finished = all(s.finished for s in snapshot.segments)
        if finished or time.monotonic() - self._last >= self._interval:
            self._last = time.monotonic()
            click.echo(f"[progress] {self.line(snapshot)}", err=True)

    def _update_bar(self, bar: Progress, snapshot: Snapshot) -> None:
        retrying = self._retrying(snapshot)
        for number, state in retrying:
            if (number, state.attempt) not in self._announced:
                self._announced.add((number, state.attempt))
                bar.console.print(
                    f"[retrying] {_retry(number, state)}", markup=False, highlight=False
                )
        done = (
            snapshot.totals.get(self._spec.rate_field, 0)
            if self._spec.estimate
            else snapshot.count(DONE, FAILED)
        )
        prefix = f"{len(retrying)} retrying · " if retrying else ""
        bar.update(self._task, completed=done, line=prefix + self.counts(snapshot))

    def _retrying(self, snapshot: Snapshot) -> list[tuple[int, SegmentState]]:
        return [(self._numbers[i], state) for i, state in snapshot.retrying().items()]

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _retry(number: int, state: SegmentState) -> str:
    reason = state.reason
    if len(reason) > REASON_CHARS:
        reason = reason[: REASON_CHARS - 1] + "…"
    return f"segment {number} (retry {state.attempt}: {reason})"
