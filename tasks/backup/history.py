"""Reading an incremental backup's history: one key's versions and when each change was made.

Needs a versioned bucket. A stored version records the creation time of its change
(``change-time`` metadata, ``tasks.backup.incremental``); a delete marker, or a version written
before change times were recorded, has only S3's time (stamped to the second: a change made in
the same second as the time asked for counts as made at or before it).

A version's *effective* time is the latest change time among it and every earlier version (the
order S3 wrote them in is the order of the states), so that a version never takes effect before
one written ahead of it. ``timeline`` computes them lazily: a version S3 wrote well before the
times asked about cannot have a later change time, so only versions written after them cost a
HeadObject, and only until one is known to be later.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tasks.aws import s3
from tasks.aws.s3 import Version
from tasks.backup.format import decode_item
from tasks.backup.incremental import CHANGE_TIME, legacy_ids, object_key
from tasks.core.errors import InvalidInputError
from tasks.core.keys import Key
from tasks.core.locations import S3Location
from tasks.core.typed_json import Item

S3_RESOLUTION = timedelta(seconds=1)  # LastModified is truncated to the second


@dataclass(frozen=True)
class Entry:
    """One version of a key: its change time, and the item (None for a deletion)."""

    version: Version
    changed: datetime
    item: Item | None


def key_versions(folder: S3Location, key: Key) -> list[Version]:
    """The versions of the key's object, newest first: ours, else the original tool's (MD5
    names); one listing when the key has our object."""
    name = object_key(folder, key)
    found = _versions(folder.bucket, name)
    for legacy in () if found else legacy_ids(key):
        found = _versions(folder.bucket, folder.key(legacy))
        if found:
            break
    return found


def _versions(bucket: str, name: str) -> list[Version]:
    return [v for v in s3.list_versions(bucket, name) if v.key == name]


def object_name(folder: S3Location, key: Key) -> str:
    """The object holding the key's history: ours, else the original tool's if it has one."""
    found = key_versions(folder, key)
    return found[0].key if found else object_key(folder, key)


def history(folder: S3Location, key: Key) -> Iterator[Entry]:
    """Every version of the key's object, oldest first, deletions included."""
    s3.require_versioning(folder.bucket)
    for version in reversed(key_versions(folder, key)):
        item = None if version.deleted else read_version(version, folder.bucket)
        yield Entry(version, change_time(version, folder.bucket), item)


def read_version(version: Version, bucket: str) -> Item:
    where = f"s3://{bucket}/{version.key} version {version.version_id}"
    found = s3.get(bucket, version.key, version.version_id)
    if found is None:
        raise InvalidInputError(f"{where} disappeared while being read")
    return decode_item(found[0], where)


def change_time(version: Version, bucket: str) -> datetime:
    """When the version's change was made: its ``change-time`` metadata, else S3's time."""
    if version.deleted:
        return version.modified
    metadata = s3.head(bucket, version.key, version.version_id) or {}
    millis = metadata.get(CHANGE_TIME, "")
    if not millis.isdigit():
        return version.modified
    return datetime.fromtimestamp(int(millis) / 1000, UTC)


def reaches_back_to(folder: S3Location, moment: datetime) -> bool:
    """Whether the first page of the folder's versions has one S3 wrote at or before ``moment``
    (then some key had a state then: the history reaches back to it). False says nothing."""
    base = f"{folder.prefix}/" if folder.prefix else ""
    return any(v.modified <= moment for v in s3.first_versions(folder.bucket, base))


def state_at(versions: Sequence[Version], at: datetime) -> Version | None:
    """The entry S3 had in force at ``at`` (versions newest first); None when none yet."""
    return next((v for v in versions if v.modified <= at), None)


@dataclass(frozen=True)
class Timeline:
    """An object's versions, oldest first, with their effective times (exact up to and just
    past ``horizon``; later ones only known to be later)."""

    versions: tuple[Version, ...]
    times: tuple[datetime, ...]

    def at(self, moment: datetime) -> Version | None:
        """The version in force at ``moment`` (a delete marker, or None before any)."""
        found = None
        for version, when in zip(self.versions, self.times, strict=True):
            if when > moment:
                break
            found = version
        return found

    def changed(self, after: datetime, until: datetime | None = None) -> bool:
        """Whether a version took effect after ``after`` (and at or before ``until``)."""
        return any(after < t and (until is None or t <= until) for t in self.times)

    @property
    def latest(self) -> Version | None:
        return self.versions[-1] if self.versions else None

    @property
    def stored(self) -> Version | None:
        """The newest stored version (not a delete marker): it holds the object's key."""
        return next((v for v in reversed(self.versions) if not v.deleted), None)


def timeline(
    versions: Sequence[Version], bucket: str, earliest: datetime, horizon: datetime
) -> Timeline:
    """``versions`` (newest first) with effective times, for questions about ``earliest`` to
    ``horizon``: a version S3 wrote a second or more before ``earliest`` has its S3 time (its
    change cannot be later); the next ones are read (HeadObject) until one took effect after
    ``horizon``."""
    ordered = tuple(reversed(versions))
    times: list[datetime] = []
    effective: datetime | None = None
    for version in ordered:
        settled = version.modified + S3_RESOLUTION <= earliest
        past = effective is not None and effective > horizon
        when = version.modified if settled or past else change_time(version, bucket)
        effective = when if effective is None else max(effective, when)
        times.append(effective)
    return Timeline(ordered, tuple(times))
