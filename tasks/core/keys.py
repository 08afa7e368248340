"""The one key value: a table key in client form, with its canonical JSON and id computed once.

A key is built once at each edge (a stream record in the producer, a message in a worker, a
scanned item, a KEY given on the command line) and then passed around as it is:

* ``item``: the typed key as boto3's client takes it (binary as bytes);
* ``canonical``: typed wire JSON, attributes sorted by name, no spaces (the identity of a key,
  what logs and dead letters show);
* ``id``: the hex SHA-256 of ``canonical`` (Redis claims and pending marks, incremental backup
  object names);
* ``wire``: the typed key with binary as base64 (JSON-safe), as messages and files carry it.

Keys cross a process boundary in wire form (``wire``), once: a message carries ``key.wire``
and the worker rebuilds the ``Key`` with ``Key.from_wire``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tasks.core.typed_json import (
    Item,
    KeySchema,
    compact_json,
    from_wire,
    key_of,
    parse_key,
    to_wire,
)


@dataclass(frozen=True, slots=True)
class Key:
    canonical: str
    item: Item = field(compare=False, hash=False, repr=False)
    wire: Item = field(compare=False, hash=False, repr=False)
    id: str = field(compare=False, hash=False, repr=False)

    @classmethod
    def of(cls, typed: Mapping[str, Any]) -> Key:
        """A key from its typed attributes, in client or wire form."""
        if _plain(typed):  # strings and numbers: the wire form is the client form
            return cls._make(typed, dict(typed))
        wire = to_wire(typed)
        return cls._make(wire, from_wire(wire))

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> Key:
        """A key from a message or a file (binary as base64)."""
        return cls._make(wire, from_wire(wire))

    @classmethod
    def from_canonical(cls, text: str) -> Key:
        return cls.from_wire(json.loads(text))

    @classmethod
    def parse(cls, text: str, schema: KeySchema) -> Key:
        """A KEY given by a user: JSON, plain (``{"id":"a"}``) or typed, checked against schema."""
        return cls.of(parse_key(text, schema))

    @classmethod
    def of_item(cls, item: Mapping[str, Any], schema: KeySchema) -> Key:
        """The key of an item (client form), by the table's key schema."""
        return cls.of(key_of(item, schema))

    @classmethod
    def _make(cls, wire: Mapping[str, Any], client: Item) -> Key:
        canonical = compact_json(wire)
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        return cls(canonical=canonical, item=client, wire=dict(wire), id=digest)

    def __str__(self) -> str:
        return self.canonical


def _plain(typed: Mapping[str, Any]) -> bool:
    """Whether every attribute is one string or number value (most keys are)."""
    for value in typed.values():
        if type(value) is not dict or len(value) != 1:
            return False
        ((tag, inner),) = value.items()
        if tag not in _PLAIN or type(inner) is not str:
            return False
    return True


_PLAIN = frozenset({"S", "N"})
