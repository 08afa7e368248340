"""Progress of a bulk job on stderr: one bar on a TTY, ``[progress]`` lines otherwise."""

from __future__ import annotations

import sys
import time

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from commands.bulk.spec import BulkSpec
from tasks.jobs.model import Snapshot


class Reporter:
    """One progress bar over all segments on a TTY; ``[progress]`` lines every interval else."""

    def __init__(self, spec: BulkSpec, segments: int, interval: float) -> None:
        self._spec, self._segments, self._interval = spec, segments, interval
        self._started = self._last = time.monotonic()
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
            total = spec.estimate or segments
            self._task = self._bar.add_task(spec.kind, total=total, line="")

    def line(self, snapshot: Snapshot) -> str:
        totals = snapshot.totals
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = totals.get(self._spec.rate_field, 0) / elapsed
        return (
            f"segments {snapshot.count('done', 'failed')}/{self._segments} done "
            f"{self._spec.describe(totals)} {rate:.0f} {self._spec.rate_field}/s"
        )

    def update(self, snapshot: Snapshot) -> None:
        if self._bar is not None:
            done = (
                snapshot.totals.get(self._spec.rate_field, 0)
                if self._spec.estimate
                else snapshot.count("done", "failed")
            )
            self._bar.update(self._task, completed=done, line=self.line(snapshot))
            return
        finished = all(s.finished for s in snapshot.segments)
        if finished or time.monotonic() - self._last >= self._interval:
            self._last = time.monotonic()
            click.echo(f"[progress] {self.line(snapshot)}", err=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
