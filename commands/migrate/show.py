"""What ``replicator migrate status`` shows of a record: its true state, lag and freshness.

The state is ``shown_state``'s (a dead command's migration reads ``interrupted``), the lag is
TARGET's replication lag as ``replicator status TARGET`` shows it, and ``updated`` is the
later of the record's last save and the command's last heartbeat.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from commands.migrate.phases import replication_lag
from commands.migrate.record import PHASES, Migration, MigrationStore
from tasks.core.locations import shown
from tasks.core.times import age_text


def view(store: MigrationStore, record: Migration) -> dict[str, Any]:
    """The record as ``status --json`` prints it."""
    beat = store.last_beat(record.name)
    return {
        **asdict(record),
        "state": store.state(record),
        "updated": max(record.updated, beat or 0.0),
        **replication_lag(record),
    }


def line(shown_record: dict[str, Any]) -> str:
    """One line of ``status``: name, tables, state (and why), phase, lag, how far behind the
    stream's tip the tail reads, freshness, counts."""
    r = shown_record
    done = len([p for p in PHASES if p in r["done"]])
    counts = " ".join(f"{k}={v}" for k, v in sorted(r["counts"].items()))
    return " ".join(
        part
        for part in (
            f"{r['name']} {shown(r['source'])} -> {shown(r['target'])}",
            f"state={r['state']}",
            f"phase={r['phase']} ({done}/{len(PHASES)})",
            f"lag p50={_ms(r['lag_ms_p50'])} p99={_ms(r['lag_ms_p99'])}",
            f"behind={_seconds(r['behind_seconds'])}",
            f"updated={age_text(time.time() - r['updated'])} ago",
            counts,
            _why(r),
        )
        if part
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}ms"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _why(r: dict[str, Any]) -> str:
    if r["state"] == "interrupted":
        return "reason=its command stopped reporting: rerun the same command to continue"
    return f"reason={r['reason']}" if r["reason"] else ""
