"""The CLI side every bulk command shares (diff-tables, backup-table, restore, backfills).

Segment options decide where the work runs (``plan``):

* none                       all segments in this process, a thread each (no broker needed);
* ``--segments N``           a job record in Redis, N tasks on the ``bulk`` queue, wait, aggregate;
* ``--segment I --segments N``  only segment I, in this process.

``execute`` runs a ``BulkSpec`` that way and returns the aggregate. While it waits it drains the
job's records (``spec.on_record``), shows one progress bar on a TTY or periodic ``[progress]``
lines otherwise (stderr). When fanning out it gives up with exit 3 (``Watchdog``) if no worker
consumes the queue within ``--pickup-timeout`` seconds, or when the job stalls and none does;
Ctrl-C cancels the job, and its segments stop after the page in hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import click

from commands.bulk.plan import Plan
from commands.bulk.progress import Reporter
from commands.bulk.spec import BulkSpec, Outcome
from commands.bulk.watchdog import Watchdog
from tasks.coord.ratelimit import rate_in_force
from tasks.coord.redis_conn import check, connection
from tasks.core import collector
from tasks.core.errors import UnavailableError
from tasks.jobs.memory_store import MemoryJobStore
from tasks.jobs.model import Job, JobStore, Snapshot
from tasks.jobs.redis_store import RedisJobStore
from tasks.kinds import KINDS, display, run_here
from tasks.names import BULK_QUEUE
from worker.app import app

POLL_SECONDS = 0.2  # at most; a young job is looked at sooner (``poll_interval``)


def execute(
    chosen: Plan,
    spec: BulkSpec,
    pickup_timeout: float = 5.0,
    progress_interval: float = 10.0,
    *,
    on_job: Callable[[Job], None] = lambda _: None,
    resume: str | None = None,
) -> Outcome:
    """Run the spec's segments as planned; returns totals and failed segments.

    A fanned-out job is handed to ``on_job`` as soon as its segments are sent (to be
    remembered); ``resume`` names such a job to wait for again instead of starting one.
    """
    started = time.monotonic()
    reporter = Reporter(spec, chosen.wanted, progress_interval)
    try:
        if chosen.mode == "fanout":
            store, job = _resumed(resume) if resume else _fan_out(chosen, spec)
            on_job(job)
            snapshot = _watch(
                store,
                job,
                chosen.wanted,
                spec,
                reporter,
                watchdog=Watchdog(store, job, pickup_timeout),
            )
        else:
            store = MemoryJobStore()
            job = store.create(spec.kind, chosen.segments, spec.params)
            snapshot = _run_here(store, job, chosen.wanted, spec, reporter)
    finally:
        reporter.close()
    wanted = [snapshot.segments[i] for i in chosen.wanted]
    return Outcome(
        job,
        Snapshot(wanted).totals,
        {i: snapshot.segments[i].error for i in chosen.wanted if snapshot.segments[i].error},
        time.monotonic() - started,
        chosen.wanted,
    )


def _run_here(
    store: JobStore, job: Job, wanted: list[int], spec: BulkSpec, reporter: Reporter
) -> Snapshot:
    collector.tune()  # this process does the work: fewer, cheaper garbage collections

    def one(segment: int) -> None:
        try:
            run_here(store, job, segment)
        except Exception as exc:  # transient ones too: no retry in the command's own process
            store.finish(job.id, segment, error=str(exc) or type(exc).__name__)

    with ThreadPoolExecutor(max_workers=len(wanted), thread_name_prefix="segment") as pool:
        for segment in wanted:
            pool.submit(one, segment)
        return _watch(store, job, wanted, spec, reporter)


def _resumed(job_id: str) -> tuple[JobStore, Job]:
    """A fanned-out job sent by an earlier run: its segments are on the queue or running."""
    check(celery=True)
    store = RedisJobStore(connection())
    return store, store.load(job_id)


def _fan_out(chosen: Plan, spec: BulkSpec) -> tuple[JobStore, Job]:
    try:
        check(celery=True)
    except UnavailableError as exc:
        raise UnavailableError(
            f"{exc}. --segments N alone fans out over Celery workers through Redis; to work in "
            "this process run without segment options, or with --segment I --segments N"
        ) from exc
    store = RedisJobStore(connection())
    job = store.create(spec.kind, chosen.segments, spec.params)
    for segment in chosen.wanted:
        send_segment(job, segment, spec.label)
    return store, job


def send_segment(job: Job, segment: int, label: Mapping[str, Any]) -> None:
    """Put a segment of a job on the ``bulk`` queue; monitors (Flower) show ``label`` beside the
    job's kind, size and locations."""
    app.send_task(
        KINDS[job.kind].task,
        args=(job.id, segment),
        queue=BULK_QUEUE,
        retry_policy={"max_retries": 3, "interval_start": 0.2},
        kwargsrepr=repr({**display(job), **label}),
    )


def poll_interval(elapsed: float) -> float:
    """Seconds until the next look at a job that has run ``elapsed`` seconds: a twentieth of
    that, from 20 ms to ``POLL_SECONDS``, so that the end of a short job is noticed within a
    few per cent of its time, and a long one is polled no more often than before."""
    return min(POLL_SECONDS, max(0.02, elapsed / 20))


def _watch(
    store: JobStore,
    job: Job,
    wanted: list[int],
    spec: BulkSpec,
    reporter: Reporter,
    *,
    watchdog: Callable[[Snapshot], None] | None = None,
) -> Snapshot:
    """Poll the job until the wanted segments finished; drain records as they come.

    Ctrl-C cancels the job: its segments stop after the page in hand.
    """
    cursor, started = 0, time.monotonic()
    while True:
        snapshot = store.snapshot(job.id)
        records = store.records(job.id, cursor)
        cursor += len(records)
        for record in records:
            spec.on_record(record)
        mine = Snapshot([snapshot.segments[i] for i in wanted])
        if spec.params.get("rate"):
            mine.rate_cap = rate_in_force(connection(), job.id)
        reporter.update(mine)
        if all(s.finished for s in mine.segments):
            return snapshot
        if watchdog:
            watchdog(snapshot)
        try:
            time.sleep(poll_interval(time.monotonic() - started))
        except KeyboardInterrupt:
            store.cancel(job.id)
            click.echo(f"[progress] interrupted: job {job.id} cancelled", err=True)
            raise
