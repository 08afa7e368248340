"""Point-in-time restore from a versioned incremental backup (``s3://bucket/prefix/TABLE``).

Every key is put as it was at time T; a key that did not exist at T (deleted by then, or created
later) is deleted from the target, unless the target was just created. Whole-table restores are
split by the first hex digit(s) of the object IDs: segment I of N lists only its own shards, and
its checkpoint is (shard, last object name), so a redelivered segment resumes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from tasks.aws import s3
from tasks.backup.history import ObjectState, object_name, read_version, state_at, states_at
from tasks.backup.restore import (
    WRITE_CHUNK,
    TableWriter,
    add_counts,
    check_schema,
    failure_records,
    fitting_key,
    job_limiter,
)
from tasks.core.config import settings
from tasks.core.iters import batched
from tasks.core.keys import Key
from tasks.core.locations import REPLICA, S3Location, parse_s3
from tasks.core.times import parse_moment
from tasks.core.typed_json import Item, KeySchema
from tasks.jobs.model import Job, Page, Work

THREADS = 16
OBJECTS_PER_PAGE = 100  # versions read and held at once (items may be up to 400 KB each)
HEX = "0123456789abcdef"


def shards(segment: int, segments: int) -> list[str]:
    """The ID prefixes segment I of N restores: one hex digit (N <= 16) or two."""
    names = list(HEX) if segments <= 16 else [f"{i:02x}" for i in range(256)]
    return [name for i, name in enumerate(names) if i % segments == segment]


def restore_keys_at(
    folder: S3Location, writer: TableWriter, schema: KeySchema, keys: Iterable[Key], at: datetime
) -> dict[str, int]:
    """Restore some keys as they were at ``at`` (``--key`` / ``--keys``)."""
    s3.require_versioning(folder.bucket)
    totals: dict[str, int] = {}
    for key in keys:
        name = object_name(folder, key)
        versions = [v for v in s3.list_versions(folder.bucket, name) if v.key == name]
        current = state_at(versions, at)
        if current is not None and not current.deleted:
            item = read_version(current, folder.bucket)
            fitting_key(item, schema, f"s3://{folder.bucket}/{name}")
            writer.put(item)
        else:
            writer.delete(key)
        if writer.buffered >= WRITE_CHUNK:
            totals = add_counts(totals, writer.flush())
    return add_counts(totals, writer.flush())


def pit_work(job: Job, segment: int) -> Work:
    """Segment ``segment`` of a whole-table point-in-time restore, for ``run_segment``."""
    params, segments = job.params, job.segments
    folder = parse_s3(params["source"])
    target = settings().table(params["target"], REPLICA)
    at = parse_moment(params["at"])
    delete_absent = bool(params.get("delete_absent", True))
    mine = shards(segment, segments)
    limiter = job_limiter(job)

    def work(checkpoint: Any) -> Iterator[Page]:
        schema = check_schema(None, target)
        start, after = (checkpoint or {}).get("shard", 0), (checkpoint or {}).get("after", "")
        writer = TableWriter(target, limiter)
        for number in range(start, len(mine)):
            states = states_at(folder, at, mine[number], after if number == start else "")
            for chunk in batched(states, OBJECTS_PER_PAGE):
                counts = _apply(folder, writer, schema, chunk, delete_absent)
                checkpoint = {"shard": number, "after": chunk[-1].name}
                yield Page(counts, checkpoint, failure_records(writer))

    return work


def _apply(
    folder: S3Location,
    writer: TableWriter,
    schema: KeySchema,
    chunk: list[ObjectState],
    delete_absent: bool,
) -> dict[str, int]:
    """Read the chunk's versions (in parallel) and write them; counts of this chunk."""
    wanted = [s for s in chunk if s.live or (delete_absent and s.any_version)]

    def read(state: ObjectState) -> Item:
        version = state.live or state.any_version
        assert version is not None
        return read_version(version, folder.bucket)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        items = list(pool.map(read, wanted))
    totals: dict[str, int] = {"objects": len(chunk)}
    for state, item in zip(wanted, items, strict=True):
        key = fitting_key(item, schema, f"s3://{folder.bucket}/{state.name}")
        if state.live:
            writer.put(item)
        else:
            writer.delete(key)
    return add_counts(totals, writer.flush())
