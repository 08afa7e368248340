"""DynamoDB's native exports to S3, read as AWS documents them.

An export lives in ``PREFIX/AWSDynamoDB/ID/`` (``ID`` is the last part of its ARN):
``manifest-summary.json`` (what DescribeExport names ``ExportManifest``: the export's ARN, table,
type and times), ``manifest-files.json`` (one JSON line per data file: ``dataFileS3Key``,
``itemCount``) and gzip data files. A full export's lines are ``{"Item": {...}}``; an
incremental export's are ``{"Keys": {...}, "NewImage": {...}, "OldImage": {...}}`` for the
changes between its from and to times, with no ``NewImage`` for a deletion. Items are in typed
DynamoDB JSON (binary as base64), as our own dumps.

A restore applies a full export, then the incremental exports of the same table that follow it,
oldest first (``chain``): each incremental export starts where the previous one ended.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from tasks.aws import dynamo, s3
from tasks.backup.format import gunzip_lines
from tasks.core.errors import InvalidInputError, NotFoundError, PermanentError
from tasks.core.locations import S3Location, Table
from tasks.core.typed_json import Item, from_wire

FULL, INCREMENTAL = "FULL_EXPORT", "INCREMENTAL_EXPORT"
FOLDER = "AWSDynamoDB"


@dataclass(frozen=True)
class Export:
    """One export as its manifests describe it."""

    bucket: str
    folder: str  # PREFIX/AWSDynamoDB/ID
    arn: str
    table_arn: str
    kind: str  # FULL or INCREMENTAL
    starts: datetime | None  # an incremental export's from time
    time: datetime  # a full export's time, an incremental export's to time
    files: tuple[str, ...]
    items: int

    @property
    def location(self) -> S3Location:
        return S3Location(self.bucket, self.folder)

    @property
    def table_name(self) -> str:
        return self.table_arn.rsplit("/", 1)[-1]


def is_export(location: S3Location) -> bool:
    """Whether an S3 location names an export's folder (``.../AWSDynamoDB/ID``)."""
    parts = location.prefix.strip("/").split("/")
    return len(parts) >= 2 and parts[-2] == FOLDER


def read(location: S3Location) -> Export:
    """The export in ``location`` (its folder), from its two manifests."""
    folder = location.prefix.strip("/")
    summary = _json(location.bucket, f"{folder}/manifest-summary.json")
    try:
        kind = str(summary.get("exportType", FULL))
        files_key = str(summary["manifestFilesS3Key"])
        times = _times(summary, kind)
        arn, table_arn = str(summary["exportArn"]), str(summary["tableArn"])
    except (KeyError, ValueError, TypeError) as exc:
        where = f"{location}/manifest-summary.json"
        raise InvalidInputError(f"{where}: not an export's manifest ({exc})") from exc
    files = tuple(_data_files(location.bucket, files_key))
    items = int(str(summary.get("itemCount") or 0))
    return Export(location.bucket, folder, arn, table_arn, kind, *times, files, items)


def _times(summary: dict[str, object], kind: str) -> tuple[datetime | None, datetime]:
    if kind == FULL:
        return None, _moment(summary["exportTime"])
    return _moment(summary["exportFromTime"]), _moment(summary["exportToTime"])


def _moment(text: object) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def _json(bucket: str, key: str) -> dict[str, object]:
    found = s3.get(bucket, key)
    if found is None:
        raise NotFoundError(f"no export at s3://{bucket}/{key.rsplit('/', 1)[0]}: {key} is missing")
    try:
        data = json.loads(found[0])
    except ValueError as exc:
        raise InvalidInputError(f"s3://{bucket}/{key}: not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InvalidInputError(f"s3://{bucket}/{key}: not a manifest")
    return data


def _data_files(bucket: str, key: str) -> Iterator[str]:
    found = s3.get(bucket, key)
    if found is None:
        raise NotFoundError(f"s3://{bucket}/{key} is missing (the export's file list)")
    for number, line in enumerate(found[0].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield str(json.loads(line)["dataFileS3Key"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"s3://{bucket}/{key} line {number}: {exc}") from exc


def exports_beside(export: Export) -> list[Export]:
    """Every export in the same ``PREFIX/AWSDynamoDB/`` folder (unreadable ones left out)."""
    parent = export.folder.rsplit("/", 1)[0]
    found = []
    for key, _ in s3.list_keys(S3Location(export.bucket, parent)):
        if key.endswith("/manifest-summary.json") and key.count("/") == parent.count("/") + 2:
            folder = key.rsplit("/", 1)[0]
            try:
                found.append(read(S3Location(export.bucket, folder)))
            except (InvalidInputError, NotFoundError):
                continue
    return found


def chain(export: Export, until: datetime | None = None) -> list[Export]:
    """The export, then (for a full export) the incremental exports of its table that follow it
    without a gap, oldest first, up to the last that ends at or before ``until``."""
    if export.kind != FULL:
        return [export]
    later = sorted(
        (
            e
            for e in exports_beside(export)
            if e.kind == INCREMENTAL and e.table_arn == export.table_arn and e.starts
        ),
        key=lambda e: (e.time, e.starts),
    )
    applied, reached = [export], export.time
    for incremental in later:
        if until is not None and incremental.time > until:
            break
        assert incremental.starts is not None
        if incremental.starts <= reached < incremental.time:
            applied.append(incremental)
            reached = incremental.time
    return applied


# -- lines -------------------------------------------------------------------------------------


def decode(line: bytes, where: str, kind: str) -> tuple[Item | None, Item]:
    """One line of an export's data file: (the item to put or None to delete, its key or item).

    A full export's line is an item to put (returned twice); an incremental export's line is a
    change: its new image to put, or no new image (a deletion) and its keys."""
    try:
        raw = json.loads(line, parse_float=str, parse_int=str)
        if kind == FULL:
            item = from_wire(raw["Item"])
            return item, item
        new = raw.get("NewImage")
        keys = from_wire(raw["Keys"])
        return (from_wire(new) if new else None), keys
    except (ValueError, KeyError, TypeError, AttributeError, InvalidInputError) as exc:
        raise InvalidInputError(f"{where}: not a line of a DynamoDB export ({exc})") from exc


def changes(chunks: Iterator[bytes], where: str, kind: str) -> Iterator[tuple[Item | None, Item]]:
    """Every line of an export's data file, decoded."""
    for number, line in enumerate(gunzip_lines(chunks, where), start=1):
        yield decode(line, f"{where} line {number}", kind)


# -- asking for exports (backup-table --export) -------------------------------------------------

POLL_SECONDS = 2.0


def folder_of(status: dynamo.ExportStatus) -> S3Location:
    """An export's folder, from DescribeExport (``ExportManifest``'s folder)."""
    return S3Location(status.bucket, status.manifest.rsplit("/", 1)[0])


def last_export_time(table: Table, destination: S3Location) -> float | None:
    """The time of the newest completed export of ``table`` into ``destination`` (epoch s)."""
    inside = f"{destination.prefix}/{FOLDER}/" if destination.prefix else f"{FOLDER}/"
    times = [
        status.time
        for status in (dynamo.describe_export(table, arn) for arn in dynamo.exports(table))
        if status.status == "COMPLETED"
        and status.bucket == destination.bucket
        and status.manifest.startswith(inside)
    ]
    return max(times, default=None)


def request(table: Table, destination: S3Location, incremental: bool) -> str:
    """Ask for a full export, or one incremental since the last export into ``destination``."""
    since = last_export_time(table, destination) if incremental else None
    if incremental and since is None:
        raise InvalidInputError(
            f"no completed export of {table} in {destination} to go on from: "
            "run a full export first (without --incremental)"
        )
    return dynamo.start_export(table, destination.bucket, destination.prefix, since)


def wait(
    table: Table, arn: str, on_progress: Callable[[dynamo.ExportStatus, float], None]
) -> dynamo.ExportStatus:
    """Poll the export until it ends; PermanentError with its reason when it failed."""
    started = time.monotonic()
    while True:
        status = dynamo.describe_export(table, arn)
        on_progress(status, time.monotonic() - started)
        if status.status == "COMPLETED":
            return status
        if status.status == "FAILED":
            raise PermanentError(f"export {arn} failed: {status.failure or 'no reason given'}")
        time.sleep(POLL_SECONDS)
