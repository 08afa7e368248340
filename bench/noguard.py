"""The worker app with the stale-write guard switched off, for bench/replication.py only.

``celery -A bench.noguard worker``: the same app and tasks, except that keys are never claimed
and never found contended, so the benchmark can show what the guard costs. Never run this for
real data: two tasks for one key could then leave an older read on the replica.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.coord.guard import StaleWriteGuard
from worker.app import app


def _claim(self: StaleWriteGuard, key_ids: Any, pipe: Any = None) -> str:
    return "unguarded"


def _contended(self: StaleWriteGuard, key_ids: Any, token: str) -> list[str]:
    return []


StaleWriteGuard.claim = _claim  # type: ignore[method-assign]
StaleWriteGuard.contended = _contended  # type: ignore[method-assign]

__all__ = ["app"]
