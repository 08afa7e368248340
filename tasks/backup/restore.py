"""Restore a table from backup files: a ``backup-table`` job folder or one snapshot object.

Source: ``s3://bucket/key`` names one object (a snapshot, or one segment), or a folder whose
objects are named 0, 1, 2, ... (a backup-table job); or the data files of a DynamoDB export
(``tasks.backup.export``: the job's ``layout`` says a full or an incremental export's lines).
Segment I of N restores the files whose index is I modulo N; its checkpoint is (file, lines
done), so a redelivered segment resumes.
Every item is decoded and checked against the target's key schema before it is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tasks.aws import dynamo, s3
from tasks.aws.consumed import Meter, metered
from tasks.aws.dynamo import Failure
from tasks.backup import export
from tasks.backup.format import read_items, schema_from_metadata
from tasks.coord import stats
from tasks.coord.ratelimit import RateLimiter
from tasks.coord.redis_conn import connection
from tasks.core.config import settings
from tasks.core.errors import InvalidInputError, NotFoundError, SchemaMismatchError
from tasks.core.keys import Key
from tasks.core.locations import REPLICA, S3Location, Table, parse_s3
from tasks.core.transform import TransformSpec
from tasks.core.typed_json import Item, KeySchema, key_of, validate_key
from tasks.jobs.model import Job, Page, Work
from tasks.replication.sync import ReplicaSink

WRITE_CHUNK = 100
DUMP = "dump"  # our backup files and snapshots; else an export's kind (tasks.backup.export)
PAGE_ITEMS = 1000


@dataclass(frozen=True)
class Source:
    """Backup files to restore (object keys in one bucket) and the key schema they recorded."""

    bucket: str
    files: tuple[str, ...]
    schema: KeySchema | None


def find_source(location: S3Location) -> Source:
    """The backup files at ``location``: that object, or the numbered objects of that folder."""
    s3.check_bucket(location.bucket)
    metadata = s3.head(location.bucket, location.prefix) if location.prefix else None
    if metadata is not None:
        return Source(location.bucket, (location.prefix,), schema_from_metadata(metadata))
    names = [(k, k.rsplit("/", 1)[-1]) for k, _ in s3.list_keys(location, delimiter="/")]
    files = tuple(k for k, n in sorted(names, key=lambda p: _index(p[1])) if n.isdigit())
    if not files:
        raise NotFoundError(
            f"no backup at {location}: expected a snapshot object or a backup-table job folder "
            "(objects 0, 1, ...); for an incremental backup give --at TIME"
        )
    first = s3.head(location.bucket, files[0]) or {}
    return Source(location.bucket, files, schema_from_metadata(first))


def _index(name: str) -> int:
    return int(name) if name.isdigit() else -1


def check_schema(source_schema: KeySchema | None, target: Table) -> KeySchema:
    """The target's key schema; SchemaMismatchError when the backup recorded another one."""
    schema = dynamo.schema(target)
    if source_schema is not None and source_schema != schema:
        raise SchemaMismatchError(
            f"the backup's key schema is {source_schema.describe()} but {target} has "
            f"{schema.describe()}"
        )
    return schema


def prepare_target(target: Table, source_schema: KeySchema | None, create: bool) -> None:
    """Create the target with the backup's key schema when asked and missing; check schemas."""
    if create and not dynamo.exists(target):
        if source_schema is None:
            raise InvalidInputError(
                f"{target} does not exist and the backup records no key schema (written by the "
                "original tool?): create the table first"
            )
        dynamo.create_table(target, source_schema)
    check_schema(source_schema, target)


def fitting_key(item: Item, schema: KeySchema, where: str) -> Key:
    """The item's key, checked against the target's schema (names and types)."""
    try:
        return Key.of(validate_key(key_of(item, schema), schema))
    except InvalidInputError as exc:
        raise SchemaMismatchError(
            f"{where}: the item does not fit {schema.describe()}: {exc}"
        ) from exc


@dataclass
class TableWriter:
    """Puts and deletes in batches of ``WRITE_CHUNK``, paced by ``limiter`` when there is one.

    A flush holds each key once (backups and point-in-time states have one entry per key).
    """

    target: Table  # the replica side's credentials (metered: ``job_target``)
    limiter: RateLimiter | None = None
    sink: ReplicaSink | None = None  # with a transform: writes t(item), deletes what it leaves out
    item_bytes: Mapping[str, float] | None = None  # a share rate's planned item sizes, by side
    puts: list[Item] = field(default_factory=list)
    deletes: list[Key] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def put(self, item: Item) -> None:
        self.puts.append(item)

    def delete(self, key: Key) -> None:
        self.deletes.append(key)

    @property
    def buffered(self) -> int:
        return len(self.puts) + len(self.deletes)

    def write(self, puts: Sequence[Item], deletes: Sequence[Key]) -> dict[str, Failure]:
        """Write now, then pay the limiter for it (by the units the writes consumed, when the
        job's rate is a share of capacity); the failed keys by canonical JSON."""
        if self.sink is not None:
            failures = self.sink.write(puts, deletes)
        else:
            failures = dynamo.batch_write(self.target, puts, deletes)
        if self.limiter:
            stats.flush_throttles(connection())  # the next take sees this write's throttling
            meter, items = self.target.meter, len(puts) + len(deletes)
            self.limiter.take(meter.cost(items, self.item_bytes) if meter else items)
        return failures

    def flush(self) -> dict[str, int]:
        """Write what is buffered; counts restored, deleted and failed."""
        failures = self.write(self.puts, self.deletes)
        self.failed.update({k: f.reason for k, f in failures.items()})
        deleted = sum(1 for k in self.deletes if k.canonical not in failures)
        counts = {
            "restored": len(self.puts) - (len(failures) - (len(self.deletes) - deleted)),
            "deleted": deleted,
            "failed": len(failures),
        }
        self.puts, self.deletes = [], []
        return counts


def job_sink(job: Job, target: Table, schema: KeySchema) -> ReplicaSink | None:
    """The job's transform (``transform`` param) as a sink onto the target, or None."""
    spec = TransformSpec.from_params(job.params.get("transform"))
    if spec.empty:
        return None
    sink = ReplicaSink(target, spec)
    sink.prepare(schema)
    return sink


def job_target(job: Job) -> Table:
    """The job's TARGET, its calls metered (``tasks.aws.consumed``)."""
    return metered(settings().table(job.params["target"], REPLICA), Meter())


def job_writer(job: Job, target: Table, schema: KeySchema) -> TableWriter:
    """A TableWriter onto ``target`` with the job's rate, planned item sizes and transform."""
    return TableWriter(
        target,
        job_limiter(job, target),
        job_sink(job, target, schema),
        item_bytes=job.params.get("item_bytes"),
    )


def job_limiter(job: Job, target: Table) -> RateLimiter | None:
    """The job's write-rate cap (``rate`` items/s), one token bucket shared by its segments,
    halved while ``target`` is throttled (``tasks.coord.ratelimit``)."""
    rate = float(job.params.get("rate") or 0)
    return RateLimiter(connection(), job.id, rate, watch=target) if rate else None


def restore_files_work(job: Job, segment: int) -> Work:
    """Segment ``segment`` of a restore from backup files, for ``tasks.jobs.model.run_segment``."""
    params, segments = job.params, job.segments
    target = job_target(job)
    bucket = parse_s3(params["source"]).bucket
    mine = [(i, f) for i, f in enumerate(params["files"]) if i % segments == segment]
    layout = str(params.get("layout") or DUMP)

    def work(checkpoint: Any) -> Iterator[Page]:
        schema = check_schema(schema_from_params(params), target)
        done_file, done_lines = (
            (checkpoint or {}).get("file", -1),
            (checkpoint or {}).get("lines", 0),
        )
        writer = job_writer(job, target, schema)
        for index, name in mine:
            if index < done_file:
                continue
            skip = done_lines if index == done_file else 0
            yield from _restore_file(
                writer, schema, bucket, name, index=index, skip=skip, layout=layout
            )

    return work


def schema_from_params(params: Mapping[str, Any]) -> KeySchema | None:
    recorded = params.get("schema")
    return schema_from_metadata({"key-schema": recorded}) if recorded else None


def _records(
    chunks: Iterator[bytes], where: str, layout: str
) -> Iterator[tuple[Item | None, Item]]:
    """(item to put or None to delete, its key or item) for each line of a file."""
    if layout == DUMP:
        return ((item, item) for item in read_items(chunks, where))
    return export.changes(chunks, where, layout)


def _restore_file(
    writer: TableWriter,
    schema: KeySchema,
    bucket: str,
    name: str,
    *,
    index: int,
    skip: int,
    layout: str = DUMP,
) -> Iterator[Page]:
    where = f"s3://{bucket}/{name}"
    chunks, _ = s3.stream(bucket, name)
    lines, pending = 0, {"read": 0}
    for lines, (item, key_item) in enumerate(_records(chunks, where, layout), start=1):
        if lines <= skip:
            continue
        key = fitting_key(key_item, schema, f"{where} line {lines}")
        if item is None:
            writer.delete(key)
        else:
            writer.put(item)
        pending["read"] += 1
        if writer.buffered >= WRITE_CHUNK:
            pending = add_counts(pending, writer.flush())
        if pending["read"] >= PAGE_ITEMS:
            yield _page(writer, pending, index, lines)
            pending = {"read": 0}
    yield _page(writer, pending, index, max(lines, skip))


def add_counts(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    """Two sets of counters added up."""
    return {k: a.get(k, 0) + b.get(k, 0) for k in {*a, *b}}


def _page(writer: TableWriter, pending: Mapping[str, int], index: int, lines: int) -> Page:
    counts = add_counts(pending, writer.flush())
    return Page(counts, {"file": index, "lines": lines}, failure_records(writer))


def failure_records(writer: TableWriter) -> list[str]:
    """Records for keys that could not be written (the command prints them), then forgets them."""
    records = [
        json.dumps({"failed": json.loads(k), "reason": r}, sort_keys=True)
        for k, r in writer.failed.items()
    ]
    writer.failed.clear()
    return records
