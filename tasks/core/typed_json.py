"""DynamoDB's typed values as pure functions: wire form, canonical JSON, keys, equality.

Items stay in DynamoDB's typed form end to end (``{"id": {"S": "a"}, "n": {"N": "1.50"}}``) and
numbers are never turned into floats. Two forms of binary exist:

* the *client* form boto3's low-level client uses: ``B`` and ``BS`` members are ``bytes``;
* the *wire* form of DynamoDB's JSON API: ``B`` and ``BS`` members are base64 strings.

Messages, logs, backups and canonical JSON use the wire form; the DynamoDB access module uses the
client form. ``to_wire`` and ``from_wire`` convert (both accept either form).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from json.encoder import encode_basestring
from typing import Any

from tasks.core.errors import InvalidInputError, SchemaMismatchError

Item = dict[str, Any]
TYPE_TAGS = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "BOOL", "NULL"})
KEY_TYPES = frozenset({"S", "N", "B"})
_NUMBERS = Context(prec=38)


@dataclass(frozen=True)
class KeyAttribute:
    name: str
    type: str  # S, N or B


@dataclass(frozen=True)
class KeySchema:
    """A table's primary key: the partition (hash) attribute and an optional sort (range) one."""

    hash_key: KeyAttribute
    range_key: KeyAttribute | None = None

    @property
    def attributes(self) -> tuple[KeyAttribute, ...]:
        return (self.hash_key,) if self.range_key is None else (self.hash_key, self.range_key)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes)

    def describe(self) -> str:
        return ", ".join(f"{a.name} ({a.type})" for a in self.attributes)


def _b64(value: bytes | str) -> str:
    return value if isinstance(value, str) else base64.b64encode(value).decode("ascii")


def _unb64(value: bytes | str) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError(f"binary value {value[:40]!r} is not base64") from exc


def _convert(value: Any, binary: Any) -> Any:
    if not isinstance(value, Mapping) or len(value) != 1:
        raise InvalidInputError(f"not a typed DynamoDB value: {str(value)[:80]}")
    ((tag, inner),) = value.items()
    if tag == "B":
        return {"B": binary(inner)}
    if tag == "BS":
        return {"BS": [binary(v) for v in inner]}
    if tag == "M":
        return {"M": {k: _convert(v, binary) for k, v in inner.items()}}
    if tag == "L":
        return {"L": [_convert(v, binary) for v in inner]}
    if tag not in TYPE_TAGS:
        raise InvalidInputError(f"unknown DynamoDB type tag {tag!r}")
    return {tag: inner}


def to_wire(item: Mapping[str, Any]) -> Item:
    """An item or key with binary as base64 strings (JSON-safe)."""
    return {name: _convert(value, _b64) for name, value in item.items()}


def from_wire(item: Mapping[str, Any]) -> Item:
    """An item or key with binary as bytes (what boto3's client sends and returns)."""
    if not isinstance(item, Mapping):
        raise InvalidInputError(f"not a typed DynamoDB item: {str(item)[:80]}")
    return {name: _convert(value, _unb64) for name, value in item.items()}


def compact_json(wire: Any) -> str:
    """JSON with keys sorted and no spaces: the one serialization canonical forms use."""
    return json.dumps(wire, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(item: Mapping[str, Any]) -> str:
    """Typed wire JSON, attributes sorted by name, no spaces: the identity of a key."""
    return compact_json(to_wire(item))


def key_of(item: Mapping[str, Any], schema: KeySchema) -> Item:
    """The key attributes of an item."""
    try:
        return {name: item[name] for name in schema.names}
    except KeyError as exc:
        raise InvalidInputError(f"item lacks key attribute {exc.args[0]!r}") from exc


def key_json(schema: KeySchema) -> Callable[[Mapping[str, Any]], str]:
    """``canonical_json(key_of(item, schema))`` for one schema: the same text, written directly
    (several times faster, for code that needs it for every scanned item). Anything unusual
    (a missing attribute, another type) takes the general path, errors included."""
    fields = [
        (a.name, a.type, f'{encode_basestring(a.name)}:{{"{a.type}":')
        for a in sorted(schema.attributes, key=lambda a: a.name)
    ]

    def text(item: Mapping[str, Any]) -> str:
        parts = []
        for name, tag, head in fields:
            value = item.get(name)
            inner = value.get(tag) if isinstance(value, dict) and len(value) == 1 else None
            if isinstance(inner, bytes | bytearray):
                inner = _b64(bytes(inner))
            if not isinstance(inner, str):
                return canonical_json(key_of(item, schema))
            parts.append(f"{head}{encode_basestring(inner)}}}")
        return "{" + ",".join(parts) + "}"

    return text


# -- equality ----------------------------------------------------------------------------------


def _number(text: str) -> Decimal:
    try:
        return _NUMBERS.create_decimal(text)
    except InvalidOperation as exc:
        raise InvalidInputError(f"{text!r} is not a DynamoDB number") from exc


def normalized(value: Mapping[str, Any]) -> Any:
    """A hashable value equal exactly when DynamoDB considers two typed values equal."""
    ((tag, inner),) = value.items()
    if tag == "N":
        return ("N", _number(inner))
    if tag == "B":
        return ("B", _unb64(inner))
    if tag == "SS":
        return ("SS", frozenset(inner))
    if tag == "NS":
        return ("NS", frozenset(_number(v) for v in inner))
    if tag == "BS":
        return ("BS", frozenset(_unb64(v) for v in inner))
    if tag == "M":
        return ("M", frozenset((k, normalized(v)) for k, v in inner.items()))
    if tag == "L":
        return ("L", tuple(normalized(v) for v in inner))
    return (tag, inner)


def items_equal(
    a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, ignore: Iterable[str] = ()
) -> bool:
    """DynamoDB equality of two items (None is an absent item); ``ignore`` names attributes."""
    if a is None or b is None:
        return a is None and b is None
    skip = set(ignore)
    left = {k: normalized(v) for k, v in a.items() if k not in skip}
    right = {k: normalized(v) for k, v in b.items() if k not in skip}
    return left == right


# -- keys given by users -----------------------------------------------------------------------


def validate_key(key: Mapping[str, Any], schema: KeySchema) -> Item:
    """Check that a typed key has exactly the schema's attributes with the right types."""
    if set(key) != set(schema.names):
        raise SchemaMismatchError(
            f"key {canonical_json(key) if _is_typed(key) else dict(key)} does not match "
            f"the key schema: {schema.describe()}"
        )
    for attr in schema.attributes:
        value = key[attr.name]
        if not isinstance(value, Mapping) or set(value) != {attr.type}:
            raise SchemaMismatchError(
                f"key attribute {attr.name!r} must be of type {attr.type} ({schema.describe()})"
            )
        inner = value[attr.type]
        if attr.type == "N":
            _number(inner)
        elif inner in ("", b""):
            raise InvalidInputError(f"key attribute {attr.name!r} must not be empty")
    return dict(key)


def _is_typed(key: Mapping[str, Any]) -> bool:
    return all(isinstance(v, Mapping) and len(v) == 1 and set(v) <= KEY_TYPES for v in key.values())


def parse_key(text: str, schema: KeySchema) -> Item:
    """A KEY as JSON, plain (``{"id":"a"}``) or typed (``{"id":{"S":"a"}}``), in client form."""
    try:
        raw = json.loads(text, parse_float=str, parse_int=str)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"KEY is not valid JSON: {exc.msg} (at {exc.pos})") from exc
    if not isinstance(raw, dict) or not raw:
        raise InvalidInputError('KEY must be a JSON object such as {"id":"abc"}')
    if not _is_typed(raw):
        raw = _typed_from_plain(raw, schema)
    return from_wire(validate_key(raw, schema))


def _typed_from_plain(raw: Mapping[str, Any], schema: KeySchema) -> Item:
    types = {a.name: a.type for a in schema.attributes}
    typed: Item = {}
    for name, value in raw.items():
        kind = types.get(name)
        if kind is None:
            raise SchemaMismatchError(
                f"KEY attribute {name!r} is not part of the key schema: {schema.describe()}"
            )
        if isinstance(value, dict | list | bool) or value is None:
            raise InvalidInputError(f"KEY attribute {name!r} must be a string or a number")
        typed[name] = {kind: value}
    return typed


def _equality_wire(value: Mapping[str, Any]) -> Any:
    """A typed value in wire form with numbers normalized and sets sorted: identical exactly when
    DynamoDB calls two values equal."""
    ((tag, inner),) = value.items()
    if tag == "N":
        return {"N": str(_number(inner).normalize(_NUMBERS))}
    if tag == "B":
        return {"B": _b64(_unb64(inner))}
    if tag in ("SS", "NS", "BS"):
        return {tag: sorted(_equality_wire({tag[0]: v})[tag[0]] for v in inner)}
    if tag == "M":
        return {"M": {k: _equality_wire(v) for k, v in inner.items()}}
    if tag == "L":
        return {"L": [_equality_wire(v) for v in inner]}
    return {tag: inner}


def item_digest(item: Mapping[str, Any], ignore: Iterable[str] = ()) -> str:
    """A short hash of an item: equal digests exactly when ``items_equal`` (same ``ignore``)."""
    skip = set(ignore)
    text = compact_json({k: _equality_wire(v) for k, v in item.items() if k not in skip})
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
