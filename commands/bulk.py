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

import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from tasks.errors import InvalidInputError, UnavailableError
from tasks.jobs import Job, JobStore, MemoryJobStore, RedisJobStore, Snapshot
from tasks.redis_conn import check, connection
from worker.app import app

LOCAL_SEGMENTS = 4
POLL_SECONDS = 0.2
BULK_QUEUE = "bulk"

RunHere = Callable[[JobStore, Job, int], Mapping[str, int]]


@dataclass(frozen=True)
class Plan:
    """Where the segments run: ``local`` (all, threads), ``one`` (segment I here), ``fanout``."""

    mode: str
    segments: int
    segment: int | None = None

    @property
    def wanted(self) -> list[int]:
        return [self.segment] if self.segment is not None else list(range(self.segments))


def plan(segment: int | None, segments: int | None) -> Plan:
    """Validate the segment options; InvalidInputError (exit 2) names what is wrong."""
    if segments is not None and segments < 1:
        raise InvalidInputError(f"--segments must be at least 1 (got {segments})")
    if segment is not None:
        if segments is None:
            raise InvalidInputError("--segment I needs --segments N (segment I of N)")
        if not 0 <= segment < segments:
            raise InvalidInputError(
                f"--segment must be between 0 and {segments - 1} for --segments {segments} "
                f"(got {segment})"
            )
        return Plan("one", segments, segment)
    if segments is None:
        return Plan("local", LOCAL_SEGMENTS)
    return Plan("fanout", segments)


def segment_options(func: Any) -> Any:
    """--segment, --segments, --pickup-timeout and --progress-interval."""
    options = [
        click.option("--segment", type=int, help="Run only this segment (0-based) here."),
        click.option(
            "--segments",
            type=int,
            help="Total segments; alone, fan them out as Celery tasks on the bulk queue.",
        ),
        click.option(
            "--pickup-timeout",
            type=click.FloatRange(min=0.5),
            default=5.0,
            envvar="REPLICATOR_PICKUP_TIMEOUT",
            show_default=True,
            help="Seconds to wait for a worker to take a segment before giving up.",
        ),
        click.option(
            "--progress-interval",
            type=click.FloatRange(min=0.1),
            default=10.0,
            envvar="REPLICATOR_PROGRESS_INTERVAL",
            show_default=True,
            help="Seconds between [progress] lines when not on a terminal.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@dataclass
class BulkSpec:
    """One bulk run: the job's kind and parameters, and how to run and describe a segment.

    ``task`` is the Celery task name (its arguments are the job id and the segment); ``run_here``
    runs one segment in this process (usually ``tasks.jobs.run_segment`` around the domain
    work); ``describe`` turns the running totals into the text of a progress line;
    ``rate_field`` is the counter shown as items per second.
    """

    kind: str
    task: str
    params: Mapping[str, Any]
    run_here: RunHere
    on_record: Callable[[str], None] = lambda _: None
    describe: Callable[[Mapping[str, int]], str] = lambda t: " ".join(
        f"{k}={v}" for k, v in sorted(t.items())
    )
    rate_field: str = "scanned"
    estimate: int | None = None


@dataclass
class Outcome:
    job: Job
    totals: dict[str, int]
    failures: dict[int, str]
    seconds: float
    segments: list[int] = field(default_factory=list)


def execute(
    chosen: Plan, spec: BulkSpec, pickup_timeout: float = 5.0, progress_interval: float = 10.0
) -> Outcome:
    """Run the spec's segments as planned; returns totals and failed segments."""
    started = time.monotonic()
    reporter = Reporter(spec, len(chosen.wanted), progress_interval)
    try:
        if chosen.mode == "fanout":
            store, job = _fan_out(chosen, spec)
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
    def one(segment: int) -> None:
        try:
            spec.run_here(store, job, segment)
        except Exception as exc:  # transient ones too: there is no retry here
            store.finish(job.id, segment, error=str(exc) or type(exc).__name__)

    with ThreadPoolExecutor(max_workers=len(wanted), thread_name_prefix="segment") as pool:
        for segment in wanted:
            pool.submit(one, segment)
        return _watch(store, job, wanted, spec, reporter)


def _fan_out(chosen: Plan, spec: BulkSpec) -> tuple[JobStore, Job]:
    try:
        check()
    except UnavailableError as exc:
        raise UnavailableError(
            f"{exc}. --segments N alone fans out over Celery workers through Redis; to work in "
            "this process run without segment options, or with --segment I --segments N"
        ) from exc
    store = RedisJobStore(connection())
    job = store.create(spec.kind, chosen.segments, spec.params)
    shown = display(spec, chosen.segments)
    for segment in chosen.wanted:
        app.send_task(
            spec.task,
            args=(job.id, segment),
            queue=BULK_QUEUE,
            retry_policy={"max_retries": 3, "interval_start": 0.2},
            kwargsrepr=repr(shown),
        )
    return store, job


SHOWN_PARAMS = ("primary", "replica", "table", "source", "target", "s3url")


def display(spec: BulkSpec, segments: int) -> dict[str, Any]:
    """What Flower (and worker logs) show beside a segment task's arguments (job id, segment).

    The task reads its tables from the job record; this copy is only for display (Celery's
    ``kwargsrepr``), so a monitor shows which tables a segment works on and of how many segments.
    """
    return {
        "job_kind": spec.kind,
        "segments": segments,
        **{k: spec.params[k] for k in SHOWN_PARAMS if k in spec.params},
    }


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
    cursor = 0
    while True:
        snapshot = store.snapshot(job.id)
        records = store.records(job.id, cursor)
        cursor += len(records)
        for record in records:
            spec.on_record(record)
        mine = Snapshot([snapshot.segments[i] for i in wanted])
        reporter.update(mine)
        if all(s.finished for s in mine.segments):
            return snapshot
        if watchdog:
            watchdog(snapshot)
        try:
            time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            store.cancel(job.id)
            click.echo(f"[progress] interrupted: job {job.id} cancelled", err=True)
            raise


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
