"""moto's server with some of its bugs fixed, so that it behaves as the real services do.

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

4. DynamoDB export to S3: moto writes one data file under a folder unrelated to the export's
   ARN (``table/<table ARN>/import/<id>``), and no manifests. Real exports are named
   ``table/TABLE/export/ID``, live in ``PREFIX/AWSDynamoDB/ID/`` with ``_started``,
   ``manifest-summary.json`` (named by DescribeExport's ``ExportManifest``),
   ``manifest-files.json`` (one JSON line per data file) and ``data/*.json.gz`` files of
   ``{"Item": ...}`` lines (at least one file per partition; here one per ``EXPORT_FILE_ITEMS``
   items, at least one). The export's time is when it was asked for (moto keeps no history to
   export an earlier moment from).

5. DynamoDB consumed capacity: moto reports 1 unit for any BatchWriteItem and any Scan page,
   whatever they wrote or read. DynamoDB charges a write 1 unit per started KB of the item
   (a delete: 1 unit here, moto does not tell the deleted item's size) and a scan page 0.5
   units (eventually consistent; 1 unit strongly) per started 4 KB of all the items it read
   together. Item sizes follow DynamoDB's rule (attribute names plus values), closely enough for
   capacity to grow with item size as it does on AWS.

Run as ``python -m tests.support.moto_server -H 127.0.0.1 -p PORT`` (same arguments as moto's).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from moto.core.utils import gzip_compress, unix_time_millis
from moto.dynamodb.models import table as ddb_table
from moto.dynamodb.models import table_export as ddb_export
from moto.dynamodb.models.utilities import dynamo_json_dump
from moto.dynamodb.responses import DynamoHandler
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

EXPORT_FILE_ITEMS = 1000
_original_export_init = ddb_export.TableExport.__init__
_original_export_response = ddb_export.TableExport.response


def _export_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _original_export_init(self, *args, **kwargs)
    now = datetime.now(UTC)
    self.export_id = f"{int(now.timestamp() * 1000):014d}-{uuid.uuid4().hex[:8]}"
    table_part = self.table.table_arn.split(":table/", 1)[0]
    self.arn = f"{table_part}:table/{self.table.name}/export/{self.export_id}"
    self.folder = "/".join(
        p for p in (self.s3_prefix.strip("/"), "AWSDynamoDB", self.export_id) if p
    )
    self.export_time = self.start_time = now
    self.end_time = None


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _export_files(self: Any, s3_backend: Any) -> None:
    """The export in AWS's layout: ``_started``, data files, manifest-files, manifest-summary."""
    bucket = self.s3_bucket
    s3_backend.put_object(bucket, f"{self.folder}/_started", b"")
    items = [dynamo_json_dump(i.to_json(root_attr_name="Item")) for i in self.table.all_items()]
    manifest = []
    for start in range(0, max(len(items), 1), EXPORT_FILE_ITEMS):
        chunk = items[start : start + EXPORT_FILE_ITEMS]
        body = gzip_compress("".join(f"{line}\n" for line in chunk).encode("utf-8"))
        key = f"{self.folder}/data/{uuid.uuid4().hex}.json.gz"
        s3_backend.put_object(bucket, key, body)
        digest = base64.b64encode(hashlib.md5(body).digest()).decode()
        manifest.append(
            {
                "itemCount": len(chunk),
                "md5Checksum": digest,
                "etag": hashlib.md5(body).hexdigest(),
                "dataFileS3Key": key,
            }
        )
        self.item_count += len(chunk)
        self.processed_bytes += sum(len(line) for line in chunk)
    files_key = f"{self.folder}/manifest-files.json"
    s3_backend.put_object(
        bucket, files_key, "".join(json.dumps(m) + "\n" for m in manifest).encode()
    )
    self.end_time = datetime.now(UTC)
    summary = {
        "version": "2020-06-30",
        "exportArn": self.arn,
        "startTime": _iso(self.start_time),
        "endTime": _iso(self.end_time),
        "tableArn": self.table.table_arn,
        "tableId": self.table.table_id if hasattr(self.table, "table_id") else "",
        "exportTime": _iso(self.export_time),
        "s3Bucket": bucket,
        "s3Prefix": self.s3_prefix,
        "s3SseAlgorithm": "AES256",
        "s3SseKmsKeyId": None,
        "manifestFilesS3Key": files_key,
        "billedSizeBytes": self.processed_bytes,
        "itemCount": self.item_count,
        "outputFormat": "DYNAMODB_JSON",
        "exportType": self.export_type,
    }
    s3_backend.put_object(
        bucket, f"{self.folder}/manifest-summary.json", json.dumps(summary).encode()
    )
    self.status = "COMPLETED"


def _export_response(self: Any) -> dict[str, Any]:
    response: dict[str, Any] = _original_export_response(self)
    response["ExportManifest"] = f"{self.folder}/manifest-summary.json"
    response["ExportTime"] = self.export_time.timestamp()
    response["StartTime"] = self.start_time.timestamp()
    if self.end_time is not None:
        response["EndTime"] = self.end_time.timestamp()
    return response


def _value_bytes(value: dict[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return len(inner) // 2 + 1
    if kind == "B":
        return len(base64.b64decode(inner)) if isinstance(inner, str) else len(inner)
    if kind in ("SS", "NS", "BS"):
        return sum(_value_bytes({kind[0]: v}) for v in inner)
    if kind == "L":
        return 3 + sum(1 + _value_bytes(v) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + _value_bytes(v) for k, v in inner.items())
    return 1  # BOOL, NULL


def item_bytes(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


_original_batch_write = DynamoHandler.batch_write_item
_original_scan = DynamoHandler.scan


def _batch_write_item(self: Any) -> Any:
    result = _original_batch_write(self)
    if self.body.get("ReturnConsumedCapacity", "NONE") != "NONE":
        for consumed in result.result["ConsumedCapacity"]:
            requests = self.body["RequestItems"][consumed["TableName"]]
            units = float(
                sum(
                    -(-item_bytes(r["PutRequest"]["Item"]) // 1024) if "PutRequest" in r else 1
                    for r in requests
                )
            )
            consumed["CapacityUnits"] = units
            consumed["Table"] = {"CapacityUnits": units}
    return result


def _scan(self: Any) -> Any:
    result = _original_scan(self)
    consumed = result.result.get("ConsumedCapacity")
    if consumed:
        read = sum(item_bytes(i) for i in result.result.get("Items", []))
        per_4k = 1.0 if self.body.get("ConsistentRead") else 0.5
        units = per_4k * max(1, -(-read // 4096))
        consumed["CapacityUnits"] = units
        if "Table" in consumed:
            consumed["Table"] = {"CapacityUnits": units}
    return result


kinesis_models.Stream.get_shard_for_key = _open_shard_for_key
DynamoHandler.batch_write_item = _batch_write_item
DynamoHandler.scan = _scan
ddb_table.StreamRecord.__init__ = _stream_record_init
s3_models.S3Backend.list_object_versions = _list_object_versions
ddb_export.TableExport.__init__ = _export_init
ddb_export.TableExport._backup_to_s3_file = _export_files
ddb_export.TableExport.response = _export_response

if __name__ == "__main__":
    main()
