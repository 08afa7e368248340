"""incremental-snapshot: every live object of a table's incremental folder into one gzip JSONL.

Only objects directly in the folder and named like an object ID (64 or 32 hex digits) are read,
so look-alike prefixes (``TABLE2/``), sub-folders and the snapshot itself are left out. Bodies are
read in parallel, a window at a time (memory stays bounded), decoded and written one per line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tasks.aws import s3
from tasks.backup.format import (
    GzipJsonlWriter,
    decode_item,
    encode_item,
    schema_from_metadata,
    schema_metadata,
)
from tasks.backup.incremental import is_object_id
from tasks.core.errors import InvalidInputError, NotFoundError
from tasks.core.iters import batched
from tasks.core.locations import S3Location
from tasks.core.typed_json import KeySchema

WINDOW = 64
THREADS = 16


@dataclass(frozen=True)
class Written:
    items: int
    bytes: int


def object_names(folder: S3Location) -> Iterator[str]:
    for key, _ in s3.list_keys(folder, delimiter="/"):
        if is_object_id(key.rsplit("/", 1)[-1]):
            yield key


def snapshot(
    folder: S3Location,
    destination: S3Location,
    schema: KeySchema | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Written:
    """Write the folder's live items to ``destination`` (one object); counts written."""
    s3.check_bucket(folder.bucket)
    s3.check_bucket(destination.bucket)
    if not destination.prefix:
        raise InvalidInputError(f"{destination} names no object: give s3://BUCKET/KEY")
    metadata = schema_metadata(schema) if schema else {}
    with (
        GzipJsonlWriter(destination.bucket, destination.prefix, metadata) as out,
        ThreadPoolExecutor(max_workers=THREADS) as pool,
    ):
        for window in batched(object_names(folder), WINDOW):
            for line in pool.map(lambda name: _line(folder.bucket, name), window):
                if line is not None:
                    out.write_line(line)
            if on_progress:
                on_progress(out.items)
    return Written(out.items, out.bytes)


def _line(bucket: str, name: str) -> bytes | None:
    """The object's item as one line; None when it was deleted since it was listed."""
    found = s3.get(bucket, name)
    if found is None:
        return None
    return encode_item(decode_item(found[0], f"s3://{bucket}/{name}"))


def recorded_schema(folder: S3Location) -> KeySchema | None:
    """The key schema the folder's first object recorded, if any."""
    for name in object_names(folder):
        metadata = s3.head(folder.bucket, name)
        return schema_from_metadata(metadata) if metadata is not None else None
    raise NotFoundError(f"no incremental backup objects under {folder}/")
