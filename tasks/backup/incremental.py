"""Incremental backups: each key's current state as one S3 object, its versions the history.

Layout: ``s3://BUCKET/PREFIX/TABLE/ID`` where ID is the hex SHA-256 of the key's canonical JSON
(typed wire JSON, attributes sorted by name, no spaces: ``{"id":{"S":"record-1"}}``). The body is
the item as compact typed JSON; a key that no longer exists has its object deleted. The original
tool named objects by the hex MD5 of the key's typed JSON instead (attribute order as in its
stream records); ``legacy_ids`` gives those names so that its backups can be read.

Each stored version records, in its metadata (``change-time``, epoch milliseconds), the creation
time of the newest stream change the producer had sent for that key when the backup read it: the
time of the change, not of the backup's write (S3's own time, up to the backup's lag later).
A delete marker can carry no metadata, so a deletion keeps S3's time; so do versions written
without a change record (backfills, ``incremental-backup-record``) or before change times were
recorded.

A write is skipped when the object already holds that state (same SHA-256 of the body, kept in
the object's metadata) and a delete when the object is already gone, so that replays and
duplicate deliveries add no versions: with a versioned bucket each change is one version.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from tasks.aws import s3
from tasks.aws.dynamo import Failure
from tasks.backup.format import encode_item, schema_metadata
from tasks.core.errors import ReplicatorError, TransientError
from tasks.core.keys import Key
from tasks.core.locations import S3Location, Table
from tasks.core.typed_json import Item, KeySchema

BODY_DIGEST = "sha256"
CHANGE_TIME = "change-time"
ID_PATTERN = re.compile(r"^([0-9a-f]{64}|[0-9a-f]{32})$")
THREADS = 16
T = TypeVar("T")


def table_folder(location: S3Location, table: str) -> S3Location:
    """Where a table's incremental objects live: PREFIX/TABLE."""
    return location.child(table)


def object_key(folder: S3Location, key: Key) -> str:
    return folder.key(key.id)


def legacy_ids(key: Key) -> list[str]:
    """The original tool's object names for a key: MD5 of its compact typed JSON, each order."""
    wire = key.wire
    names = []
    for order in itertools.permutations(wire):
        text = json.dumps({a: wire[a] for a in order}, separators=(",", ":"), ensure_ascii=False)
        names.append(hashlib.md5(text.encode("utf-8")).hexdigest())
    return list(dict.fromkeys(names))


def is_object_id(name: str) -> bool:
    return bool(ID_PATTERN.match(name))


@dataclass(frozen=True)
class Change:
    """What one key's write did: "put", "delete" or "unchanged"."""

    key: Key
    action: str


def apply(
    folder: S3Location, schema: KeySchema, item: Item | None, key: Key, changed: float = 0.0
) -> Change:
    """Make the key's object hold ``item`` (or be absent when None); skip when it already does.

    ``changed``: epoch seconds of the change this state comes from (0: unknown)."""
    name = object_key(folder, key)
    current = s3.head(folder.bucket, name)
    if item is None:
        if current is None:
            return Change(key, "unchanged")
        s3.delete(folder.bucket, name)
        return Change(key, "delete")
    body = encode_item(item)
    digest = hashlib.sha256(body).hexdigest()
    if current is not None and current.get(BODY_DIGEST) == digest:
        return Change(key, "unchanged")
    metadata = {BODY_DIGEST: digest, **schema_metadata(schema)}
    if changed > 0:
        metadata[CHANGE_TIME] = str(round(changed * 1000))
    s3.put(folder.bucket, name, body, metadata)
    return Change(key, "put")


def apply_many(
    folder: S3Location,
    schema: KeySchema,
    present: Sequence[Item],
    absent: Sequence[Key],
    changed: Mapping[str, float] | None = None,
) -> tuple[list[Change], dict[str, Failure]]:
    """Apply many keys at once (a thread pool); failed keys by canonical JSON. ``changed``
    gives the change time of a key's state by canonical JSON, when known."""
    times = changed or {}
    work: list[tuple[Item | None, Key]] = [(i, Key.of_item(i, schema)) for i in present]
    work += [(None, k) for k in absent]
    changes: list[Change] = []
    failed: dict[str, Failure] = {}

    def one(pair: tuple[Item | None, Key]) -> Change | Failure:
        try:
            return apply(folder, schema, *pair, times.get(pair[1].canonical, 0.0))
        except ReplicatorError as exc:
            return Failure(str(exc), retryable=isinstance(exc, TransientError))

    with ThreadPoolExecutor(max_workers=min(THREADS, max(1, len(work)))) as pool:
        for (_, key), result in zip(work, pool.map(one, work), strict=True):
            if isinstance(result, Failure):
                failed[key.canonical] = result
            else:
                changes.append(result)
    return changes, failed


@dataclass
class S3Sink:
    """The incremental backup as a sync target (``tasks.replication.sync.Sink``)."""

    location: S3Location
    table: str
    on_change: Callable[[Change], None] | None = None
    changed: Mapping[str, float] = field(default_factory=dict)  # change time by canonical key
    name: str = field(init=False)  # the target's identity in Redis: the S3 URL
    _schema: KeySchema | None = None

    def __post_init__(self) -> None:
        self.name = str(self.location)

    @property
    def folder(self) -> S3Location:
        return table_folder(self.location, self.table)

    @property
    def tables(self) -> tuple[Table, ...]:
        return ()

    def prepare(self, primary_schema: KeySchema) -> None:
        s3.check_bucket(self.location.bucket)
        self._schema = primary_schema

    def write(self, present: Sequence[Item], absent: Sequence[Key]) -> dict[str, Failure]:
        assert self._schema is not None, "prepare() first"
        changes, failed = apply_many(self.folder, self._schema, present, absent, self.changed)
        if self.on_change:
            for change in changes:
                self.on_change(change)
        return failed
