"""Backup file format, object naming and restore helpers: pure functions, no servers."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from datetime import UTC, datetime

import pytest

from tasks.backup.format import (
    decode_item,
    encode_item,
    gunzip_lines,
    read_items,
    schema_from_metadata,
    schema_metadata,
)
from tasks.backup.incremental import is_object_id, legacy_ids
from tasks.backup.point_in_time import shards
from tasks.core.errors import InvalidInputError
from tasks.core.keys import Key
from tasks.core.times import parse_moment
from tasks.core.typed_json import KeyAttribute, KeySchema


def _chunks(data: bytes, size: int = 7) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_lines_survive_any_chunking_and_several_gzip_members() -> None:
    data = gzip.compress(b'{"a":{"S":"1"}}\n{"a":{"S":"2"}}\n') + gzip.compress(b'{"a":{"S":"3"}}')
    items = list(read_items(iter(_chunks(data)), "f"))
    assert [i["a"]["S"] for i in items] == ["1", "2", "3"]


def test_truncated_gzip_is_reported_and_its_partial_line_never_yielded() -> None:
    data = gzip.compress(b'{"a":{"S":"1"}}\n{"a":{"S":"22222222222222222222"}}\n')
    lines = gunzip_lines(iter([data[:-12]]), "s3://b/k")
    assert next(lines) == b'{"a":{"S":"1"}}'
    with pytest.raises(InvalidInputError, match="truncated gzip"):
        next(lines)


def test_corrupt_gzip_and_untyped_lines_name_the_place() -> None:
    with pytest.raises(InvalidInputError, match="s3://b/k: corrupt gzip"):
        list(gunzip_lines(iter([b"not gzip at all"]), "s3://b/k"))
    with pytest.raises(InvalidInputError, match="line 2: not typed DynamoDB JSON"):
        list(read_items(iter([gzip.compress(b'{"a":{"S":"x"}}\n{"a":"plain"}\n')]), "f"))
    with pytest.raises(InvalidInputError, match="f line 1: not JSON"):
        list(read_items(iter([gzip.compress(b'{"a":\n')]), "f"))


def test_encode_is_compact_sorted_wire_json_and_decodes_back() -> None:
    item = {"z": {"B": b"\x00\xff"}, "a": {"M": {"s": {"BS": [b"\x01"]}, "n": {"NS": ["1.50"]}}}}
    line = encode_item(item)
    assert line == b'{"a":{"M":{"n":{"NS":["1.50"]},"s":{"BS":["AQ=="]}}},"z":{"B":"AP8="}}'
    assert decode_item(line, "x") == item


def test_object_ids_and_the_original_tools_names() -> None:
    key = Key.of({"id": {"S": "record-1"}})
    assert key.id == hashlib.sha256(b'{"id":{"S":"record-1"}}').hexdigest()
    assert legacy_ids(key) == [hashlib.md5(b'{"id":{"S":"record-1"}}').hexdigest()]
    assert len(legacy_ids(Key.of({"h": {"S": "a"}, "r": {"N": "1"}}))) == 2
    assert is_object_id(key.id) and is_object_id(legacy_ids(key)[0])
    assert not is_object_id("snapshot.gz") and not is_object_id("0")


def test_key_schema_travels_in_metadata() -> None:
    schema = KeySchema(KeyAttribute("h", "S"), KeyAttribute("r", "N"))
    assert schema_from_metadata(schema_metadata(schema)) == schema
    assert schema_from_metadata({}) is None
    with pytest.raises(InvalidInputError):
        schema_from_metadata({"key-schema": "nonsense"})


def test_times_and_shards() -> None:
    assert parse_moment("2026-11-27T10:00:00Z") == datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert parse_moment("2026-11-27T10:00:00") == datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert parse_moment("1764237600500") == datetime(2025, 11, 27, 10, 0, 0, 500000, tzinfo=UTC)
    with pytest.raises(InvalidInputError, match="invalid time"):
        parse_moment("yesterday")
    assert sorted(s for i in range(3) for s in shards(i, 3)) == list("0123456789abcdef")
    assert len({s for i in range(20) for s in shards(i, 20)}) == 256


def test_zlib_is_really_gzip() -> None:
    # the writer's wbits make real gzip members: gzip.decompress reads them
    packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    assert gzip.decompress(packer.compress(b"x\n") + packer.flush()) == b"x\n"
