"""S3 access: the only module that calls boto3 for S3.

Objects are small (one item) or streamed (gzip JSONL dumps, uploaded as multipart parts of
``PART_SIZE`` so memory stays bounded whatever the table size). botocore retries throttling and
5xx itself (standard mode); what still fails is translated by ``tasks.aws.errors``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from tasks.aws import clients
from tasks.aws.errors import translated
from tasks.core.errors import ConfigurationError, NotFoundError
from tasks.core.locations import S3Location

PART_SIZE = 8 * 1024 * 1024  # S3 takes parts of 5 MiB and more (the last one may be smaller)
READ_CHUNK = 1024 * 1024
LIST_PAGE_SIZE = 1000  # S3's own maximum; tests lower it to exercise pagination


@dataclass(frozen=True)
class Version:
    """One entry of an object's history: a stored version, or a delete marker (body-less)."""

    key: str
    version_id: str
    modified: datetime
    deleted: bool
    latest: bool
    etag: str = ""  # a stored version's ETag (the MD5 of its body when uploaded whole)


def check_bucket(bucket: str) -> None:
    """NotFoundError naming the bucket when it does not exist (checked once per process)."""
    _check_bucket(bucket)


@lru_cache(maxsize=64)
def _check_bucket(bucket: str) -> None:
    try:
        with translated(f"bucket s3://{bucket}"):
            clients.s3().head_bucket(Bucket=bucket)
    except NotFoundError as exc:
        raise NotFoundError(f"bucket s3://{bucket} does not exist") from exc


def require_versioning(bucket: str) -> None:
    """ConfigurationError saying how to enable versioning when the bucket keeps no history."""
    check_bucket(bucket)
    with translated(f"versioning of s3://{bucket}"):
        status = clients.s3().get_bucket_versioning(Bucket=bucket).get("Status")
    if status != "Enabled":
        raise ConfigurationError(
            f"bucket s3://{bucket} does not have versioning enabled, so it keeps no history; "
            f"enable it with `aws s3api put-bucket-versioning --bucket {bucket} "
            "--versioning-configuration Status=Enabled` (changes from then on are kept)"
        )


def put(bucket: str, key: str, body: bytes, metadata: dict[str, str] | None = None) -> None:
    with translated(f"PutObject s3://{bucket}/{key}"):
        clients.s3().put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata or {})


def delete(bucket: str, key: str) -> None:
    with translated(f"DeleteObject s3://{bucket}/{key}"):
        clients.s3().delete_object(Bucket=bucket, Key=key)


def head(bucket: str, key: str, version_id: str | None = None) -> dict[str, str] | None:
    """The object's (or that version's) user metadata, or None when it does not exist (or is
    deleted)."""
    args: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        args["VersionId"] = version_id
    try:
        with translated(f"HeadObject s3://{bucket}/{key}"):
            response = clients.s3().head_object(**args)
    except NotFoundError:
        return None
    return dict(response.get("Metadata", {}))


def get(
    bucket: str, key: str, version_id: str | None = None
) -> tuple[bytes, dict[str, str]] | None:
    """The object's body and metadata, or None when it does not exist."""
    args: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        args["VersionId"] = version_id
    try:
        with translated(f"GetObject s3://{bucket}/{key}"):
            response = clients.s3().get_object(**args)
            body = response["Body"].read()
    except NotFoundError:
        return None
    return body, dict(response.get("Metadata", {}))


def stream(bucket: str, key: str) -> tuple[Iterator[bytes], dict[str, str]]:
    """The object's body in chunks (never whole in memory) and its metadata."""
    try:
        with translated(f"GetObject s3://{bucket}/{key}"):
            response = clients.s3().get_object(Bucket=bucket, Key=key)
    except NotFoundError as exc:
        raise NotFoundError(f"s3://{bucket}/{key} does not exist") from exc

    def chunks() -> Iterator[bytes]:
        with translated(f"reading s3://{bucket}/{key}"):
            yield from response["Body"].iter_chunks(READ_CHUNK)

    return chunks(), dict(response.get("Metadata", {}))


def list_keys(location: S3Location, delimiter: str = "") -> Iterator[tuple[str, int]]:
    """(key, size) of every current object under ``location.prefix + '/'``, page by page."""
    prefix = f"{location.prefix}/" if location.prefix else ""
    args: dict[str, Any] = {"Bucket": location.bucket, "Prefix": prefix}
    if delimiter:
        args["Delimiter"] = delimiter
    paginator = clients.s3().get_paginator("list_objects_v2")
    with translated(f"listing {location}"):
        for page in paginator.paginate(**args):
            for obj in page.get("Contents", []):
                yield obj["Key"], int(obj["Size"])


def list_versions(bucket: str, prefix: str, after: str = "") -> Iterator[Version]:
    """Every version and delete marker under ``prefix`` (of keys after ``after``): by key,
    newest first within a key.

    S3 returns stored versions and delete markers in two lists; they are merged by time, and
    within one second (S3's resolution) the entry S3 flags as latest comes first.
    """
    paginator = clients.s3().get_paginator("list_object_versions")
    args: dict[str, Any] = {
        "Bucket": bucket,
        "Prefix": prefix,
        "PaginationConfig": {"PageSize": LIST_PAGE_SIZE},
    }
    if after:
        args["KeyMarker"] = after
    pending: list[Version] = []
    with translated(f"listing versions of s3://{bucket}/{prefix}"):
        for page in paginator.paginate(**args):
            entries = [_version(v, False) for v in page.get("Versions", [])]
            entries += [_version(v, True) for v in page.get("DeleteMarkers", [])]
            pending += entries
            # keys are complete once a later key shows up; keep the last key for the next page
            last = max((v.key for v in pending), default="")
            done = [v for v in pending if v.key != last]
            pending = [v for v in pending if v.key == last]
            yield from newest_first(done)
    yield from newest_first(pending)


def first_versions(bucket: str, prefix: str) -> list[Version]:
    """The first page (up to ``LIST_PAGE_SIZE`` entries) of the versions under ``prefix``."""
    with translated(f"listing versions of s3://{bucket}/{prefix}"):
        page = clients.s3().list_object_versions(
            Bucket=bucket, Prefix=prefix, MaxKeys=LIST_PAGE_SIZE
        )
    entries = [_version(v, False) for v in page.get("Versions", [])]
    return entries + [_version(v, True) for v in page.get("DeleteMarkers", [])]


def _version(raw: Any, deleted: bool) -> Version:
    etag = str(raw.get("ETag", "")).strip('"')
    return Version(
        raw["Key"], raw["VersionId"], raw["LastModified"], deleted, raw["IsLatest"], etag
    )


def newest_first(entries: list[Version]) -> list[Version]:
    """Versions and delete markers by key, newest first; a tie (same second) puts S3's latest
    first and otherwise keeps S3's order within each kind (the sort is stable)."""
    return sorted(entries, key=lambda v: (v.key, -v.modified.timestamp(), not v.latest))


class MultipartUpload:
    """An object written part by part; ``complete`` makes it visible, ``abort`` drops it."""

    def __init__(self, bucket: str, key: str, metadata: dict[str, str] | None = None) -> None:
        self.bucket, self.key = bucket, key
        self._parts: list[dict[str, Any]] = []
        with translated(f"CreateMultipartUpload s3://{bucket}/{key}"):
            response = clients.s3().create_multipart_upload(
                Bucket=bucket, Key=key, Metadata=metadata or {}
            )
        self._upload_id = response["UploadId"]

    def part(self, data: bytes) -> None:
        number = len(self._parts) + 1
        with translated(f"UploadPart {number} of s3://{self.bucket}/{self.key}"):
            response = clients.s3().upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=data,
            )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def complete(self) -> None:
        with translated(f"CompleteMultipartUpload s3://{self.bucket}/{self.key}"):
            clients.s3().complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},  # type: ignore[typeddict-item]
            )

    def abort(self) -> None:
        with translated(f"AbortMultipartUpload s3://{self.bucket}/{self.key}"):
            clients.s3().abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id
            )
