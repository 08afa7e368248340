"""The worker app with the stale-write guard switched off, for bench/replication.py only.

``celery -A bench.noguard worker``: the same app and tasks, except that keys are never claimed
and never found contended (pending marks are still released and the counters kept), so the
benchmark can show what the guard costs. Never run this for real data: two tasks for one key
could then leave an older read on the replica.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.coord import stats
from tasks.coord.guard import StaleWriteGuard
from worker.app import app


def _nothing_contended(self: StaleWriteGuard, key_ids: Any, token: str) -> list[str]:
    return []


def _release_only(self: StaleWriteGuard, key_ids: Any, release: Any = None) -> str:
    if release is not None and release.key_ids:
        self._redis.hdel(release.hash, *release.key_ids)
    return "unguarded"


def _count_only(self: StaleWriteGuard, token: str, written: Any) -> list[str]:
    puts = sum(1 for put in written.puts if put)
    counts = {"reads": written.reads, "superseded": written.superseded, "puts": puts}
    pipe = self._redis.pipeline(transaction=False)
    stats.add(pipe, self._target, {**counts, "deletes": len(written.puts) - puts})
    stats.add_lag(pipe, self._target, written.created)
    pipe.execute()
    return []


def _claim_nothing(self: StaleWriteGuard, key_ids: Any, pipe: Any = None) -> str:
    return "unguarded"


if hasattr(StaleWriteGuard, "settle"):  # the guard of three scripts
    StaleWriteGuard.claim = _release_only  # type: ignore[method-assign]
    StaleWriteGuard.settle = _count_only  # type: ignore[method-assign]
else:  # the guard before it (claims on a pipeline the task executes, two MGET checks)
    StaleWriteGuard.claim = _claim_nothing  # type: ignore[method-assign,assignment]
StaleWriteGuard.contended = _nothing_contended  # type: ignore[method-assign]

__all__ = ["app"]
