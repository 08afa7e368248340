"""moto's server with three of its bugs fixed, so that it behaves as the real services do.

1. Kinesis: after a split or merge, moto still routes new records (and the records it moves out
   of the parent) to the closed parent shard, because it picks the first shard whose hash range
   covers the key. Real Kinesis writes to open shards only.
2. DynamoDB Streams: moto base64-encodes binary *key* attributes twice in stream records (its
   NewImage/OldImage are right). Real DynamoDB Streams carry the key bytes once.
3. S3 ListObjectVersions: moto deep-copies every version of every key in the bucket on each
   call (to set ``is_latest`` on the copies), whatever the prefix. Each copy is a new moto model,
   which moto remembers in ``FakeKey.instances_tracked`` until a reset, with its own copy of the
   object's body: the server grew by about 42 MB a call on a bucket of 15,000 versions, and a
   restore that lists each key's versions by prefix ran it out of memory. Real S3 keeps nothing
   per listing. Here a listing reads the versions of the keys under the prefix only, and shows
   each stored version through a small view carrying its ``is_latest``. The results (order,
   markers, pagination, delete markers, common prefixes) are moto's own, but for one more bug:
   given a key marker without a version-id marker, moto skips only the newest version of the
   first key at or after the marker; real S3 lists the keys after the marker, every version of
   each (a restore resuming after its last object relies on it).

Run as ``python -m tests.support.moto_server -H 127.0.0.1 -p PORT`` (same arguments as moto's).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from moto.core.utils import unix_time_millis
from moto.dynamodb.models import table as ddb_table
from moto.kinesis import models as kinesis_models
from moto.s3 import models as s3_models
from moto.server import main

_original_shard_for_key = kinesis_models.Stream.get_shard_for_key


def _open_shard_for_key(self: Any, partition_key: str, explicit_hash_key: str) -> Any:
    shards = self.shards
    self.shards = {k: s for k, s in shards.items() if s.is_open}
    try:
        return _original_shard_for_key(self, partition_key, explicit_hash_key)
    finally:
        self.shards = shards


_original_stream_record_init = ddb_table.StreamRecord.__init__


def _stream_record_init(
    self: Any, table: Any, stream_type: str, event_name: str, old: Any, new: Any, seq: int
) -> None:
    _original_stream_record_init(self, table, stream_type, event_name, old, new, seq)
    attributes = (old if old is not None else new).to_json()["Attributes"]
    keys = self.record["dynamodb"]["Keys"]
    self.record["dynamodb"]["Keys"] = {name: attributes[name] for name in keys}


class _ListedVersion:
    """A stored version (key or delete marker) as one listing shows it: nothing is copied."""

    def __init__(self, stored: Any, is_latest: bool) -> None:
        self.stored = stored
        self.is_latest = is_latest

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stored, name)


def _newest_first(store: Any, name: str) -> list[Any]:
    """A key's versions in moto's order (newest first; a stable sort, as moto's)."""
    versions = store.getlist(name) or []
    return sorted(versions, key=lambda v: -unix_time_millis(v.last_modified))


def _skipped_by_markers(
    store: Any, key_marker: str | None, version_id_marker: str | None
) -> tuple[str | None, int] | None:
    """Which versions of the key at ``key_marker`` moto skips: ``(name, how many)``; None: all.

    With a version-id marker, everything up to and including that version (everything if there
    is no such version), as moto does; with a key marker alone, the marker's key itself, as S3
    does (``_listed_versions`` starts after it).
    """
    if key_marker is None or not version_id_marker:
        return (None, 0)
    ids = [v.version_id for v in _newest_first(store, key_marker)]
    if version_id_marker not in ids:
        return None
    return (key_marker, ids.index(version_id_marker) + 1)


def _listed_versions(
    store: Any, prefix: str, key_marker: str | None, version_id_marker: str | None
) -> Iterator[_ListedVersion]:
    """The versions under ``prefix`` after the markers, in moto's order, without copies."""
    skipped = _skipped_by_markers(store, key_marker, version_id_marker)
    if skipped is None:
        return
    skipped_name, skipped_count = skipped
    names = [n for n in list(store) if n.startswith(prefix)]
    if key_marker is not None:
        after = bool(key_marker) and not version_id_marker  # S3: the keys after a key marker
        names = [n for n in names if n > key_marker or (n == key_marker and not after)]
    for name in sorted(names):
        versions = [_ListedVersion(v, i == 0) for i, v in enumerate(_newest_first(store, name))]
        yield from versions[skipped_count:] if name == skipped_name else versions


class _VersionsPage:
    """One ListObjectVersions page, filled as moto fills it (max-keys counts common prefixes)."""

    def __init__(
        self, prefix: str, delimiter: str | None, key_marker: str | None, max_keys: int | None
    ) -> None:
        self.prefix, self.delimiter = prefix, delimiter
        self.key_marker, self.max_keys = key_marker, max_keys
        self.versions: list[_ListedVersion] = []
        self.delete_markers: list[_ListedVersion] = []
        self.common_prefixes: set[str] = set()
        self.last_added: _ListedVersion | None = None
        self.next_key_marker: str | None = None
        self.next_version_id_marker: str | None = None

    def _common_prefix(self, name: str) -> str | None:
        rest = name[len(self.prefix) :]
        if not self.delimiter or self.delimiter not in rest:
            return None
        return name[: len(self.prefix) + rest.index(self.delimiter) + len(self.delimiter)]

    def _full(self) -> bool:
        count = len(self.versions) + len(self.delete_markers) + len(self.common_prefixes)
        return self.max_keys is not None and count >= self.max_keys

    def add(self, version: _ListedVersion) -> bool:
        """Take one more version; False when the page is full (the version is not taken)."""
        common_prefix = self._common_prefix(version.name)
        if common_prefix is not None:
            if common_prefix == self.key_marker:
                return True
            self.common_prefixes.add(common_prefix)
        if self._full():
            last = self.last_added
            self.next_key_marker = common_prefix or (last.name if last else version.name)
            self.next_version_id_marker = last.version_id if last and not common_prefix else None
            return False
        if common_prefix is None:
            self.last_added = version
            is_key = isinstance(version.stored, s3_models.FakeKey)
            (self.versions if is_key else self.delete_markers).append(version)
        return True


def _list_object_versions(
    self: Any,
    bucket_name: str,
    delimiter: str | None = None,
    key_marker: str | None = None,
    max_keys: int | None = 1000,
    prefix: str = "",
    version_id_marker: str | None = None,
) -> tuple[list[Any], list[str], list[Any], str | None, str | None]:
    bucket = self.get_bucket(bucket_name)
    page = _VersionsPage(prefix, delimiter, key_marker, max_keys)
    for version in _listed_versions(bucket.keys, prefix, key_marker, version_id_marker):
        if not page.add(version):
            break
    return (
        page.versions,
        sorted(page.common_prefixes),
        page.delete_markers,
        page.next_key_marker,
        page.next_version_id_marker,
    )


_original_list_object_versions = s3_models.S3Backend.list_object_versions

kinesis_models.Stream.get_shard_for_key = _open_shard_for_key
ddb_table.StreamRecord.__init__ = _stream_record_init
s3_models.S3Backend.list_object_versions = _list_object_versions

if __name__ == "__main__":
    main()
