"""Progress of a bulk job: segments retrying after a transient failure show, with why."""

from __future__ import annotations

import io
import sys

import pytest

from commands.bulk import progress
from commands.bulk.progress import Reporter
from commands.bulk.spec import BulkSpec
from tasks.jobs.model import DONE, FAILED, RETRYING, RUNNING, SegmentState, Snapshot

REASON = "Scan of http://127.0.0.1:1/t: service error 500 InternalServerError"


def _snapshot() -> Snapshot:
    return Snapshot(
        [
            SegmentState(status=RETRYING, attempt=2, reason=REASON),
            SegmentState(status=DONE, counts={"items": 5}),
            SegmentState(status=RUNNING, attempt=1, reason="x" * 500),
            SegmentState(status=RUNNING, attempt=1, reason="throttled"),
            SegmentState(status=RUNNING, counts={"items": 1}),
        ]
    )


def test_progress_lines_name_the_retrying_segments_and_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reporter = Reporter(BulkSpec(kind="backup-table", params={}), [4, 5, 6, 7, 8], 0.0)
    reporter.update(_snapshot())

    line = capsys.readouterr().err
    assert line.startswith("[progress] segments 1/5 done items=6 ")
    assert f"; retrying: segment 4 (retry 2: {REASON}), segment 6 (retry 1: xxx" in line
    assert "x" * 119 + "…) and 1 more" in line and "x" * 120 not in line
    assert "segment 8" not in line

    reporter.update(Snapshot([SegmentState(status=FAILED, error="e"), *_snapshot().segments[1:]]))
    assert "[progress] segments 2/5 done (1 failed) items=6 " in capsys.readouterr().err


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_bar_says_how_many_retry_and_prints_each_retry_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("COLUMNS", "200")
    reporter = Reporter(BulkSpec(kind="backup-table", params={}), [4, 5, 6, 7, 8], 10.0)
    reporter.update(_snapshot())
    reporter.update(_snapshot())
    reporter.close()

    shown = terminal.getvalue()
    assert shown.count(f"[retrying] segment 4 (retry 2: {REASON})") == 1
    assert shown.count("[retrying] segment 7 (retry 1: throttled)") == 1
    assert "3 retrying · segments 1/5 done" in shown and "[progress]" not in shown


def test_the_rate_is_the_recent_one_and_the_eta_follows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    rate = progress.Rate()
    rate.add(0)
    clock[0] = 10.0
    assert rate.add(1000) == 100.0
    clock[0] = 40.0
    rate.add(1300)
    clock[0] = 70.0  # the first 1,000 items are older than the window: 300 in the last 30 s
    assert rate.add(1600) == 10.0
    assert progress.eta(1600, 2000, 10.0) == "ETA 40s"
    assert progress.eta(0, 10, 0.0) == "ETA ?"
    assert progress.eta(12, 10, 0.0) == "ETA 0s"  # the expected count is DynamoDB's estimate


def test_progress_lines_of_a_named_spec_say_its_name_items_and_eta(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = BulkSpec(kind="diff", params={}, name="backfill", estimate=10, counter="items")
    Reporter(spec, [4, 5, 6, 7, 8], 0.0).update(_snapshot())

    line = capsys.readouterr().err
    prefix = "[progress] backfill: segments 1/5 done items=6 0 items/s, 6/10 items, ETA ?; "
    assert line.startswith(prefix), line


def test_the_rate_counts_every_look_not_only_the_printed_ones(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    spec = BulkSpec(kind="diff", params={}, estimate=400, counter="items")
    reporter = Reporter(spec, [0], 60.0)
    clock[0] = 1.0
    reporter.update(Snapshot([SegmentState(status=RUNNING, counts={"items": 100})]))
    clock[0] = 3.0
    reporter.update(Snapshot([SegmentState(status=RUNNING, counts={"items": 300})]))
    assert capsys.readouterr().err == ""  # within the interval: nothing printed yet
    clock[0] = 4.0
    reporter.update(Snapshot([SegmentState(status=DONE, counts={"items": 400})]))

    line = capsys.readouterr().err
    assert "items=400 100 items/s, 400/400 items, ETA 0s" in line, line
