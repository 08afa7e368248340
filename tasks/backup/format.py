"""Backup files: gzip, one item per line as compact typed DynamoDB JSON (wire form).

``backup-table`` segments, incremental snapshots and the original tool's dumps all share this
format, so one reader restores any of them. Writing streams the gzip output to S3 in multipart
parts; reading decompresses chunk by chunk. A line is yielded only once it is complete and fully
decoded, so a truncated or corrupt file never yields a partial item.

The key schema of the source table travels in the object's user metadata (``key-schema``, JSON
``[["id","S"],["ts","N"]]``, hash key first); the original tool wrote none.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

from tasks.aws import s3
from tasks.core.errors import InvalidInputError
from tasks.core.typed_json import Item, KeyAttribute, KeySchema, canonical_json, from_wire

SCHEMA_METADATA = "key-schema"
_GZIP_WBITS = 16 + zlib.MAX_WBITS


def encode_item(item: Mapping[str, Any]) -> bytes:
    """An item as compact typed JSON (attributes sorted, binary base64), without a newline."""
    return canonical_json(item).encode("utf-8")


def decode_item(line: bytes, where: str) -> Item:
    """A line of typed JSON as an item (client form); InvalidInputError naming ``where``."""
    try:
        raw = json.loads(line, parse_float=str, parse_int=str)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{where}: not JSON ({exc})") from exc
    if not isinstance(raw, dict) or not raw:
        raise InvalidInputError(f"{where}: not a typed DynamoDB item")
    try:
        return from_wire(raw)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: not typed DynamoDB JSON ({exc})") from exc


def schema_metadata(schema: KeySchema) -> dict[str, str]:
    pairs = [[a.name, a.type] for a in schema.attributes]
    return {SCHEMA_METADATA: json.dumps(pairs, separators=(",", ":"))}


def schema_from_metadata(metadata: Mapping[str, str]) -> KeySchema | None:
    """The key schema a backup recorded, or None (the original tool recorded none)."""
    text = metadata.get(SCHEMA_METADATA)
    if not text:
        return None
    try:
        attrs = [KeyAttribute(str(name), str(kind)) for name, kind in json.loads(text)]
        return KeySchema(attrs[0], attrs[1] if len(attrs) > 1 else None)
    except (ValueError, TypeError, IndexError) as exc:
        raise InvalidInputError(f"unreadable key-schema metadata {text!r}") from exc


class GzipJsonlWriter:
    """Items to one gzip JSONL object, uploaded in parts as the compressed output grows."""

    def __init__(
        self,
        bucket: str,
        key: str,
        metadata: dict[str, str] | None = None,
        part_size: int = s3.PART_SIZE,
    ) -> None:
        self._upload = s3.MultipartUpload(bucket, key, metadata)
        self._zip = zlib.compressobj(6, zlib.DEFLATED, _GZIP_WBITS)
        self._buffer = bytearray()
        self._part_size = part_size
        self.items = 0
        self.bytes = 0  # compressed bytes written

    def write(self, item: Mapping[str, Any]) -> None:
        self.write_line(encode_item(item))

    def write_line(self, line: bytes) -> None:
        self._buffer += self._zip.compress(line + b"\n")
        self.items += 1
        if len(self._buffer) >= self._part_size:
            self._flush()

    def _flush(self) -> None:
        self.bytes += len(self._buffer)
        self._upload.part(bytes(self._buffer))
        self._buffer.clear()

    def close(self) -> None:
        self._buffer += self._zip.flush()
        self._flush()
        self._upload.complete()

    def __enter__(self) -> GzipJsonlWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self._upload.abort()


def gunzip_lines(chunks: Iterator[bytes], where: str) -> Iterator[bytes]:
    """Complete lines of a gzip stream (several members allowed); errors name ``where``."""
    unzip = zlib.decompressobj(_GZIP_WBITS)
    rest = b""
    for chunk in chunks:
        data = chunk
        while data:
            try:
                out = unzip.decompress(data)
            except zlib.error as exc:
                raise InvalidInputError(f"{where}: corrupt gzip data ({exc})") from exc
            lines = (rest + out).split(b"\n")
            rest = lines.pop()
            yield from (line for line in lines if line.strip())
            data = unzip.unused_data
            if unzip.eof and data:
                unzip = zlib.decompressobj(_GZIP_WBITS)
            elif unzip.eof:
                break
    if not unzip.eof:
        raise InvalidInputError(f"{where}: truncated gzip data (the file ends mid-stream)")
    if rest.strip():
        yield rest


def read_items(chunks: Iterator[bytes], where: str) -> Iterator[Item]:
    """Every item of a backup file, each fully decoded before it is yielded."""
    for number, line in enumerate(gunzip_lines(chunks, where), start=1):
        yield decode_item(line, f"{where} line {number}")
