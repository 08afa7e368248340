"""The registry of bulk job kinds: each kind's segment task and segment work.

A bulk command creates a job of one kind (``tasks.jobs``); a segment runs ``run_here`` in the
command's process or in the kind's Celery task on a worker (``tasks.segments``). Adding a kind is
one entry here plus its work function, ``(job, segment) -> Work``, in its feature package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tasks import names
from tasks.backup.backfill import backfill_work
from tasks.backup.dump import backup_work
from tasks.backup.point_in_time import keys_work, table_work
from tasks.backup.restore import restore_files_work
from tasks.core.locations import shown
from tasks.diff.match import discrepancies
from tasks.diff.segment import diff_work
from tasks.jobs.model import Job, JobStore, Progress, SendAgain, Work, run_segment


def _nothing(counts: Mapping[str, int]) -> dict[str, int]:
    return {}


def _diff_summary(counts: Mapping[str, int]) -> dict[str, int]:
    return {"discrepancies": discrepancies(counts)}


@dataclass(frozen=True)
class Kind:
    """A bulk job kind: its name, its segment task, its work, its throughput counter, and what
    its progress shows beyond the counters."""

    name: str
    task: str
    work: Callable[[Job, int], Work]
    rate_field: str
    summary: Callable[[Mapping[str, int]], dict[str, int]] = _nothing


KINDS: Mapping[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("diff", names.DIFF_SEGMENT, diff_work, "compared", _diff_summary),
        Kind("backup-table", names.BACKUP_SEGMENT, backup_work, "items"),
        Kind("incremental-backfill", names.BACKFILL_SEGMENT, backfill_work, "scanned"),
        Kind("restore-table", names.RESTORE_SEGMENT, restore_files_work, "restored"),
        Kind("restore-table-at", names.RESTORE_SEGMENT, table_work, "objects"),
        Kind("restore-keys-at", names.RESTORE_SEGMENT, keys_work, "keys"),
    )
}


SHOWN_PARAMS = ("primary", "replica", "table", "source", "target", "s3url")


def display(job: Job) -> dict[str, Any]:
    """What monitors show of a job beside a segment (Flower's task arguments, log lines): its
    kind, size and locations as people write them (never items)."""
    params = job.params
    return {
        "job_kind": job.kind,
        "segments": job.segments,
        **{k: shown(str(params[k])) for k in SHOWN_PARAMS if k in params},
    }


def run_here(
    store: JobStore,
    job: Job,
    segment: int,
    on_progress: Progress | None = None,
    retry: SendAgain | None = None,
) -> dict[str, int]:
    """Run one segment of ``job`` in this process; returns the segment's counts.

    Without ``retry`` a transient failure fails the segment (``tasks.jobs.model.run_segment``).
    """
    work = KINDS[job.kind].work(job, segment)
    return run_segment(store, job, segment, work, on_progress, retry)
