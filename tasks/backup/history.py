"""Reading an incremental backup's history: one key's versions, and every key as at a time.

Needs a versioned bucket. S3 stamps versions to the second (``LastModified``): a change made in
the same second as the time asked for counts as made at or before it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from tasks.aws import s3
from tasks.aws.s3 import Version
from tasks.backup.format import decode_item
from tasks.backup.incremental import is_object_id, legacy_ids, object_key
from tasks.core.errors import InvalidInputError
from tasks.core.keys import Key
from tasks.core.locations import S3Location
from tasks.core.typed_json import Item


@dataclass(frozen=True)
class Entry:
    """One version of a key: its time, and the item (None for a deletion)."""

    version: Version
    item: Item | None


def object_name(folder: S3Location, key: Key) -> str:
    """The object holding the key's history: ours, else the original tool's if it has one."""
    name = object_key(folder, key)
    if next(_versions(folder.bucket, name), None) is not None:
        return name
    for legacy in legacy_ids(key):
        candidate = folder.key(legacy)
        if next(_versions(folder.bucket, candidate), None) is not None:
            return candidate
    return name


def _versions(bucket: str, name: str) -> Iterator[Version]:
    return (v for v in s3.list_versions(bucket, name) if v.key == name)


def history(folder: S3Location, key: Key) -> Iterator[Entry]:
    """Every version of the key's object, oldest first, deletions included."""
    s3.require_versioning(folder.bucket)
    name = object_name(folder, key)
    for version in reversed(list(_versions(folder.bucket, name))):
        yield Entry(version, None if version.deleted else read_version(version, folder.bucket))


def read_version(version: Version, bucket: str) -> Item:
    where = f"s3://{bucket}/{version.key} version {version.version_id}"
    found = s3.get(bucket, version.key, version.version_id)
    if found is None:
        raise InvalidInputError(f"{where} disappeared while being read")
    return decode_item(found[0], where)


def state_at(versions: Sequence[Version], at: datetime) -> Version | None:
    """The entry in force at ``at`` (versions newest first); None when the key had none yet."""
    return next((v for v in versions if v.modified <= at), None)


@dataclass(frozen=True)
class ObjectState:
    """An object's state at a time: ``live`` is the version to restore, or None (absent)."""

    name: str
    live: Version | None
    any_version: Version | None  # a stored version, to learn the key of an absent object


def states_at(
    folder: S3Location, at: datetime, shard: str = "", after: str = ""
) -> Iterator[ObjectState]:
    """Every incremental object of ``folder`` whose ID starts with ``shard`` (and whose name
    sorts after ``after``) as it was at ``at``."""
    base = folder.key("")
    base = f"{base}/" if base else ""
    listing = s3.list_versions(folder.bucket, base + shard, after)
    for name, group in itertools.groupby(listing, key=lambda v: v.key):
        if not is_object_id(name[len(base) :]):
            continue
        versions = list(group)
        current = state_at(versions, at)
        live = current if current is not None and not current.deleted else None
        stored = next((v for v in versions if not v.deleted), None)
        yield ObjectState(name, live, stored)
