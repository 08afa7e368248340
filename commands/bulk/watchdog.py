"""Giving up on a fanned-out job that no worker serves: Celery inspection of the bulk queue."""

from __future__ import annotations

import time

import click

from tasks.core.errors import UnavailableError
from tasks.jobs.model import Job, JobStore, Snapshot
from tasks.names import BULK_QUEUE
from worker.app import app

STALL_SECONDS = 30.0


class Watchdog:
    """Gives up (exit 3) when no worker consumes the queue while the job waits or stalls.

    Checked when nothing was picked up within ``pickup_timeout`` seconds, and again whenever the
    counters have not moved for ``STALL_SECONDS`` (every worker died, say). The job is cancelled
    first, so segments queued or running stop.
    """

    def __init__(self, store: JobStore, job: Job, pickup_timeout: float) -> None:
        self._store, self._job, self._timeout = store, job, pickup_timeout
        self._started = self._moved = time.monotonic()
        self._seen: tuple[object, ...] = ()
        self._waiting_said = False

    def __call__(self, snapshot: Snapshot) -> None:
        now = time.monotonic()
        seen = (snapshot.totals, [(s.status, s.deliveries) for s in snapshot.segments])
        if seen != self._seen:
            self._seen, self._moved = seen, now
        if not snapshot.picked_up:
            due = now - self._started >= self._timeout and not self._waiting_said
        else:
            due = now - self._moved >= max(STALL_SECONDS, self._timeout)
        if not due:
            return
        self._moved = now
        if _bulk_consumers():
            if not snapshot.picked_up:
                self._waiting_said = True
                click.echo("[progress] segments queued; waiting for a free worker", err=True)
            return
        self._store.cancel(self._job.id)
        what = (
            f"no worker picked up any of the segment tasks within {self._timeout:g}s"
            if not snapshot.picked_up
            else f"the job made no progress for {max(STALL_SECONDS, self._timeout):g}s"
        )
        raise UnavailableError(
            f"{what}: no worker consumes the '{BULK_QUEUE}' queue (job {self._job.id} cancelled). "
            f"Start one with `celery -A worker worker -Q {BULK_QUEUE}`, or run segments in this "
            "process with --segment I --segments N (or without segment options)"
        )


def _bulk_consumers() -> int:
    replies = app.control.inspect(timeout=1.0).active_queues() or {}
    return sum(1 for queues in replies.values() for q in queues if q.get("name") == BULK_QUEUE)
