"""Point-in-time restores from a versioned incremental backup (``s3://bucket/prefix/TABLE``), as
bulk jobs: the whole table (``restore-table-at``) or a list of keys (``restore-keys-at``).

What each key becomes is ``tasks.backup.rollback``'s decision; only what differs is written.
A whole-table restore is split by the first hex digit(s) of the object IDs: segment I of N lists
only its own shards, its checkpoint is (shard, last object name). A keys restore gives segment I
the keys whose index is I modulo N, its checkpoint the number of them done. A redelivered or
resumed segment goes on from its checkpoint.

Job parameters: ``source``, ``target``, ``point`` and ``end`` (the ``Window``), ``compare``
("backup": the target holds the latest backed-up state; "table": read it), ``existed`` (the
target existed before: compare with it, delete from it), ``dry_run``, ``show``, ``probe`` (only
list and decide: counts ``known`` and the oldest version, for the check before a real run),
``rate`` and, for keys, ``keys`` (canonical JSON).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tasks.aws import dynamo, s3
from tasks.aws.s3 import Version
from tasks.backup.history import key_versions
from tasks.backup.incremental import is_object_id
from tasks.backup.restore import job_target, job_writer
from tasks.backup.rollback import (
    Decision,
    Planned,
    Rollback,
    Window,
    carry_out,
    oldest_record,
    plan,
)
from tasks.core.iters import batched
from tasks.core.keys import Key
from tasks.core.locations import S3Location, parse_s3
from tasks.core.times import parse_moment
from tasks.jobs.model import Job, Page, Work

THREADS = 16
OBJECTS_PER_PAGE = 100  # versions read and held at once (items may be up to 400 KB each)
HEX = "0123456789abcdef"


def shards(segment: int, segments: int) -> list[str]:
    """The ID prefixes segment I of N restores: one hex digit (N <= 16) or two."""
    names = list(HEX) if segments <= 16 else [f"{i:02x}" for i in range(256)]
    return [name for i, name in enumerate(names) if i % segments == segment]


def window_of(params: Mapping[str, Any]) -> Window:
    end = params.get("end")
    return Window(parse_moment(params["point"]), parse_moment(end) if end else None)


def _rollback(job: Job) -> tuple[S3Location, Rollback]:
    params = job.params
    folder = parse_s3(params["source"])
    target = job_target(job)
    schema = dynamo.schema(target)
    rollback = Rollback(
        folder=folder,
        target=target,
        schema=schema,
        writer=job_writer(job, target, schema),
        compare_table=bool(params.get("existed")),
        dry_run=bool(params.get("dry_run")),
        show=bool(params.get("show")),
    )
    return folder, rollback


Decide = Callable[[Sequence[Version]], Decision]


def _decider(job: Job, bucket: str) -> Decide:
    window, compare_backup = window_of(job.params), job.params.get("compare") == "backup"
    return lambda versions: plan(versions, bucket, window, compare_backup)


def _page(job: Job, rollback: Rollback, chunk: list[Planned], unit: str, checkpoint: Any) -> Page:
    """Carry out (or, probing, only count) a chunk; the page for the job record."""
    decisions = [p.decision for p in chunk]
    counts = {
        unit: len(chunk),
        "history": sum(1 for d in decisions if d.oldest is not None),  # keys with versions
        "known": sum(1 for d in decisions if d.known),  # keys with a state at the point
    }
    if not job.params.get("probe"):
        counts.update(carry_out(rollback, chunk))
    records, rollback.records = [*rollback.records, *oldest_record(decisions)], []
    return Page(counts, checkpoint, records)


def table_work(job: Job, segment: int) -> Work:
    """Segment ``segment`` of a whole-table point-in-time restore, for ``run_segment``."""
    mine = shards(segment, job.segments)

    def work(checkpoint: Any) -> Iterator[Page]:
        folder, rollback = _rollback(job)
        decide = _decider(job, folder.bucket)
        start, after = (checkpoint or {}).get("shard", 0), (checkpoint or {}).get("after", "")
        for number in range(start, len(mine)):
            objects = _objects(folder, mine[number], after if number == start else "")
            for chunk in batched(objects, OBJECTS_PER_PAGE):
                with ThreadPoolExecutor(max_workers=THREADS) as pool:
                    planned = [Planned(d) for d in pool.map(decide, [v for _, v in chunk])]
                checkpoint = {"shard": number, "after": chunk[-1][0]}
                yield _page(job, rollback, planned, "objects", checkpoint)

    return work


def _objects(folder: S3Location, shard: str, after: str) -> Iterator[tuple[str, list[Version]]]:
    """Each incremental object of ``folder`` whose ID starts with ``shard`` (and whose name sorts
    after ``after``), with its versions newest first."""
    base = folder.key("")
    base = f"{base}/" if base else ""
    listing = s3.list_versions(folder.bucket, base + shard, after)
    for name, group in itertools.groupby(listing, key=lambda v: v.key):
        if is_object_id(name[len(base) :]):
            yield name, list(group)


def keys_work(job: Job, segment: int) -> Work:
    """Segment ``segment`` of a point-in-time restore of listed keys, for ``run_segment``."""
    keys = [k for i, k in enumerate(job.params["keys"]) if i % job.segments == segment]

    def work(checkpoint: Any) -> Iterator[Page]:
        folder, rollback = _rollback(job)
        decide = _decider(job, folder.bucket)
        done = int(checkpoint or 0)

        def one(canonical: str) -> Planned:
            key = Key.from_canonical(canonical)
            return Planned(decide(key_versions(folder, key)), key)

        for start in range(done, len(keys), OBJECTS_PER_PAGE):
            chunk = keys[start : start + OBJECTS_PER_PAGE]
            with ThreadPoolExecutor(max_workers=THREADS) as pool:
                planned = list(pool.map(one, chunk))
            yield _page(job, rollback, planned, "keys", start + len(chunk))

    return work
