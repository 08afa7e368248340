"""Progress of a bulk job on stderr: one bar on a TTY, ``[progress]`` lines otherwise.

Both show the segments done, the running totals, the current rate (over the last
``RATE_WINDOW_SECONDS``) and, when the spec knows how many items to expect, the items done of
that many and an ETA at the current rate; and the segments retrying after a transient failure
with their reason: ``[progress]`` lines end with ``; retrying: segment 1 (retry 2: REASON)``; on a
TTY the bar starts with ``1 retrying ·`` and each new retry is printed above it as
``[retrying] segment 1 (retry 2: REASON)``. While the bar shows, log lines and other writes to
stderr are printed above it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, TextIO

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from commands.bulk.spec import BulkSpec
from tasks.core.times import age_text
from tasks.jobs.model import DONE, FAILED, SegmentState, Snapshot

_Handler = logging.StreamHandler[Any]

SHOWN_RETRYING = 2
REASON_CHARS = 120
RATE_WINDOW_SECONDS = 30.0
"""The current rate is measured over this much of the recent past (an ETA follows it)."""


class Rate:
    """Items per second over the last ``RATE_WINDOW_SECONDS`` of (time, running total)."""

    def __init__(self) -> None:
        self._seen: deque[tuple[float, int]] = deque()

    def add(self, total: int) -> float:
        now = time.monotonic()
        self._seen.append((now, total))
        while len(self._seen) > 2 and now - self._seen[1][0] >= RATE_WINDOW_SECONDS:
            self._seen.popleft()
        then, before = self._seen[0]
        return (total - before) / (now - then) if now > then else 0.0


def eta(done: int, expected: int, rate: float) -> str:
    """The time left at ``rate``: ``ETA 4m05s``, or ``ETA ?`` before anything was measured."""
    if done >= expected:
        return "ETA 0s"
    if rate <= 0:
        return "ETA ?"
    return f"ETA {age_text((expected - done) / rate)}"


class Reporter:
    """One progress bar over all segments on a TTY; ``[progress]`` lines every interval else.

    ``wanted`` are the numbers of the segments in the snapshots it is given, in order.
    """

    def __init__(self, spec: BulkSpec, wanted: Sequence[int], interval: float) -> None:
        self._spec, self._interval = spec, interval
        self._numbers, self._segments = list(wanted), len(wanted)
        self._last = time.monotonic()
        self._rate, self._per_second = Rate(), 0.0
        self._announced: set[tuple[int, int]] = set()
        self._bar: Progress | None = None
        self._logs: list[tuple[_Handler, TextIO]] = []
        if sys.stderr.isatty():
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                TimeElapsedColumn(),
                TextColumn("{task.fields[line]}"),
                console=Console(stderr=True),
            )
            stderr = sys.stderr
            self._bar.start()  # stands in for sys.stderr: what is written goes above the bar
            self._logs = _move_log_handlers(stderr, sys.stderr)
            total = spec.estimate or self._segments
            self._task = self._bar.add_task(spec.title, total=total, line="")

    def counts(self, snapshot: Snapshot) -> str:
        """Segments done (and how many of them failed), the totals, the current rate, and
        the items done of those expected with an ETA (when the spec expects a number)."""
        totals, field, rate = snapshot.totals, self._spec.rate_field, self._per_second
        failed = snapshot.count(FAILED)
        return (
            f"segments {snapshot.count(DONE, FAILED)}/{self._segments} done "
            + (f"({failed} failed) " if failed else "")
            + f"{self._spec.describe(totals)} {rate:.0f} {field}/s"
            + (f" (rate cap {snapshot.rate_cap:.0f}/s)" if snapshot.rate_cap else "")
            + self._expected(totals.get(field, 0), rate)
        )

    def _expected(self, done: int, rate: float) -> str:
        expected = self._spec.estimate
        if not expected:
            return ""
        return f", {done}/{expected} {self._spec.rate_field}, {eta(done, expected, rate)}"

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
        self._per_second = self._rate.add(snapshot.totals.get(self._spec.rate_field, 0))
        if self._bar is not None:
            self._update_bar(self._bar, snapshot)
            return
        finished = all(s.finished for s in snapshot.segments)
        if finished or time.monotonic() - self._last >= self._interval:
            self._last = time.monotonic()
            click.echo(f"[progress] {self._spec.prefix}{self.line(snapshot)}", err=True)

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
            for handler, stream in self._logs:
                handler.setStream(stream)
            self._bar.stop()


def _move_log_handlers(old: TextIO, new: TextIO) -> list[tuple[_Handler, TextIO]]:
    """Point the root logger's handlers that write to ``old`` at ``new``; returns what to
    restore."""
    moved: list[tuple[_Handler, TextIO]] = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is old:
            moved.append((handler, old))
            handler.setStream(new)
    return moved


def _retry(number: int, state: SegmentState) -> str:
    reason = state.reason
    if len(reason) > REASON_CHARS:
        reason = reason[: REASON_CHARS - 1] + "…"
    return f"segment {number} (retry {state.attempt}: {reason})"
