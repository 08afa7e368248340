"""What ``replicator migrate`` prints while it works, on a pipe and on a terminal: the phase's
name on its progress, items done of those expected, the current rate and an ETA; the tail's own
log lines only with --verbose, and above the bar, never inside it."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
from pathlib import Path
from typing import Any

from tests.support.migration import REPLICATOR, load, migrate, ready_line
from tests.support.servers import ROOT
from tests.support.tables import create_table

ITEMS = 3000
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")  # a log line on a terminal starts so


def migration_args(moto_url: str, name: str, rate: int = 600) -> list[str]:
    return [
        f"{moto_url}/source",
        f"{moto_url}/target",
        "--create",
        "--segments",
        "4",
        "--rate",
        str(rate),
        "--verify",
        "sample:10",
        "--progress-interval",
        "1",
        "--exit-when-ready",
        "--name",
        name,
    ]


def test_progress_on_a_pipe_names_the_phase_and_gives_items_rate_and_eta(
    env: dict[str, str], moto_url: str, start_worker: Any, tmp_path: Path
) -> None:
    create_table(moto_url, "source", stream="KEYS_ONLY")
    load(moto_url, "source", ITEMS)
    start_worker(concurrency=2)

    command = migrate(env, tmp_path, *migration_args(moto_url, "piped"))

    assert command.process.wait(300) == 0, command.output()
    lines = command.output().splitlines()
    assert lines[0].startswith("[migrate] piped: ") and "replicator migrate stop piped" in lines[0]
    backfill = [line for line in lines if line.startswith("[progress] backfill: segments ")]
    assert backfill, lines
    pattern = rf"\d+ scanned/s( \(rate cap \d+/s\))?, \d+/{ITEMS} scanned, ETA (\?|\d)"
    assert re.search(pattern, backfill[0]), backfill
    assert backfill[-1].endswith(f", {ITEMS}/{ITEMS} scanned, ETA 0s"), backfill
    verify = [line for line in lines if line.startswith("[progress] verify: segments ")]
    assert verify and "/10 done" in verify[-1], lines
    assert not [line for line in lines if '"producer.' in line], lines  # no --verbose
    assert ready_line(command.output())["items_copied"] == ITEMS


def run_on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``args`` with stdout and stderr on a pseudo-terminal: (exit status, what it shows)."""
    main, side = pty.openpty()
    terminal_env = {**env, "TERM": "xterm", "COLUMNS": "220", "LINES": "50"}
    process = subprocess.Popen(
        args, cwd=ROOT, env=terminal_env, stdin=side, stdout=side, stderr=side
    )
    os.close(side)
    shown = bytearray()
    while True:
        ready, _, _ = select.select([main], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal's other side closed: the process ended
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    os.close(main)
    return process.wait(30), shown.decode(errors="replace")


def visible_lines(shown: str) -> list[str]:
    """Each line as the terminal leaves it: escapes removed, a carriage return starts over
    (the last text written after one is what stays)."""
    return [_last([p for p in ANSI.sub("", line).split("\r") if p]) for line in shown.split("\n")]


def _last(pieces: list[str]) -> str:
    return pieces[-1] if pieces else ""


def test_progress_on_a_terminal_is_a_bar_per_phase_with_log_lines_above_it(
    env: dict[str, str], moto_url: str, start_worker: Any
) -> None:
    create_table(moto_url, "source", stream="KEYS_ONLY")
    load(moto_url, "source", ITEMS)
    start_worker(concurrency=2)

    # A backfill of 20 s: the tail logs its periodic stats (every 10 s) while the bar shows.
    args = [REPLICATOR, "migrate", *migration_args(moto_url, "shown", rate=150), "--verbose"]
    code, shown = run_on_a_terminal(args, env)

    assert code == 0, shown
    lines = visible_lines(shown)
    bars = [line for line in lines if "━" in line]
    assert any(line.lstrip().startswith("backfill ") for line in bars), bars
    assert any(line.lstrip().startswith("verify ") for line in bars), bars
    assert not [line for line in bars if line.lstrip().startswith("diff ")], bars
    assert any(f"/{ITEMS} scanned, ETA" in line for line in bars), bars
    logged = [line for line in lines if "lease taken" in line or "producer status" in line]
    assert [line for line in logged if "producer status" in line], lines  # --verbose: they show
    broken = [line for line in logged if not LOG_LINE.match(line.strip())]
    assert not broken, broken  # ... each on a line of its own, none inside the bar's line
    assert "[progress]" not in shown
