"""One reshaping of items, applied the same by every path: ``t(item) -> item | None``.

A ``TransformSpec`` is what a pipeline (or a command's flags) defines, in this order:

1. ``skip_expired``: an item whose TTL attribute (``ttl_attribute``, epoch seconds) lies in the
   past is absent (DynamoDB's TTL deletion can lag by days);
2. ``filter``: a JMESPath expression over the plain item (``kind != 'internal'``); an item for
   which it is not true is absent;
3. ``exclude``: attributes dropped; ``rename``: attributes renamed (``old=new``);
4. ``callable``: ``module:function``, item in (typed, client form) -> item or None out, loaded
   once per process, applied last.

Absent means absent everywhere: replication deletes the key from the replica, a diff counts a
replica item whose primary item is filtered out as extraneous. A transform never changes the
key: a result whose key attributes differ raises ``KeyChangedError`` (the key is failed, never
written). ``identity`` is a short hash of the definition, carried by messages and shown.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from tasks.core.errors import ConfigurationError, PermanentError
from tasks.core.fast_filter import compile_tree
from tasks.core.typed_json import Item

Function = Callable[[Item], Item | None]


class KeyChangedError(PermanentError):
    """A transform returned an item with other key attributes: never written."""


@dataclass(frozen=True)
class TransformSpec:
    """A transform's definition (what a pipelines file or flags say); empty: the identity."""

    exclude: tuple[str, ...] = ()
    rename: tuple[tuple[str, str], ...] = ()
    filter: str | None = None
    skip_expired: bool = False
    ttl_attribute: str | None = None
    callable: str | None = None

    @property
    def empty(self) -> bool:
        return self == TransformSpec()

    def to_params(self) -> dict[str, Any]:
        """JSON-safe, for messages and job records (``from_params`` reads it back)."""
        return {
            "exclude": list(self.exclude),
            "rename": [list(pair) for pair in self.rename],
            "filter": self.filter,
            "skip_expired": self.skip_expired,
            "ttl_attribute": self.ttl_attribute,
            "callable": self.callable,
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> TransformSpec:
        if not params:
            return cls()
        return cls(
            exclude=tuple(params.get("exclude") or ()),
            rename=tuple((str(a), str(b)) for a, b in params.get("rename") or ()),
            filter=params.get("filter"),
            skip_expired=bool(params.get("skip_expired")),
            ttl_attribute=params.get("ttl_attribute"),
            callable=params.get("callable"),
        )

    @classmethod
    def from_file(cls, table: Mapping[str, Any]) -> TransformSpec:
        """A pipelines file's ``transform = { ... }`` table (the flags' names, without
        dashes); ConfigurationError naming what is wrong."""
        known = {"exclude_attributes", "rename_attributes", "filter", "skip_expired", "transform"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigurationError(f"unknown transform keys {unknown} (known: {sorted(known)})")
        exclude, rename = table.get("exclude_attributes", []), table.get("rename_attributes", {})
        if not isinstance(exclude, list) or not all(isinstance(a, str) for a in exclude):
            raise ConfigurationError("exclude_attributes must be a list of names")
        if not isinstance(rename, dict) or not all(isinstance(v, str) for v in rename.values()):
            raise ConfigurationError('rename_attributes must be a table { old = "new" }')
        return cls(
            exclude=tuple(exclude),
            rename=tuple(sorted(rename.items())),
            filter=table.get("filter"),
            skip_expired=bool(table.get("skip_expired", False)),
            callable=table.get("transform"),
        )

    @property
    def identity(self) -> str:
        """A short hash of the definition ("" for the identity transform)."""
        if self.empty:
            return ""
        text = json.dumps(self.to_params(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Transform:
    """A loaded ``TransformSpec``: the filter compiled, the callable imported."""

    spec: TransformSpec
    key_names: tuple[str, ...]
    _filter: Callable[[Any], Any] | None = field(default=None, repr=False)  # the compiled filter
    _function: Function | None = field(default=None, repr=False)
    _names: frozenset[str] | None = field(default=None, repr=False)  # what the filter reads

    def __call__(self, item: Item) -> Item | None:
        spec = self.spec
        if spec.skip_expired and spec.ttl_attribute and _expired(item, spec.ttl_attribute):
            return None
        if self._filter is not None and self._filter(plain(item, self._names)) is not True:
            return None
        shaped = {k: v for k, v in item.items() if k not in spec.exclude}
        for old, new in spec.rename:
            if old in shaped:
                shaped[new] = shaped.pop(old)
        result = self._function(shaped) if self._function else shaped
        if result is not None and any(result.get(k) != item.get(k) for k in self.key_names):
            raise KeyChangedError(
                f"transform {spec.identity} changed the key attributes "
                f"({', '.join(self.key_names)}): not written"
            )
        return result

    def items(self, items: Sequence[Item]) -> tuple[list[Item], list[Item]]:
        """(transformed items to write, original items now absent)."""
        kept, gone = [], []
        for item in items:
            shaped = self(item)
            if shaped is None:
                gone.append(item)
            else:
                kept.append(shaped)
        return kept, gone


def load(spec: TransformSpec, key_names: Sequence[str]) -> Transform:
    """Compile and import what ``spec`` names; ConfigurationError naming the option and cause."""
    for name in (*spec.exclude, *(old for old, _ in spec.rename), *(n for _, n in spec.rename)):
        if name in key_names:
            option = "--exclude-attributes" if name in spec.exclude else "--rename-attribute"
            raise ConfigurationError(f"{option}: {name} is a key attribute (keys never change)")
    compiled = compile_filter(spec.filter) if spec.filter else None
    function = import_callable(spec.callable) if spec.callable else None
    search, names = None, None
    if compiled is not None:
        search = compile_tree(compiled.parsed) or compiled.search
        names = filter_names(compiled)
    return Transform(spec, tuple(key_names), search, function, names)


@lru_cache(maxsize=64)
def compile_filter(text: str) -> Any:
    try:
        return jmespath.compile(text)
    except JMESPathError as exc:
        where = getattr(exc, "lex_position", None)
        detail = getattr(exc, "msg", None) or str(exc).splitlines()[0]
        at = f" at column {where}" if where is not None else ""
        raise ConfigurationError(f"--filter {text!r} does not parse: {detail}{at}") from exc


@lru_cache(maxsize=64)
def import_callable(path: str) -> Function:
    """``module:function``, imported once per process."""
    module_name, _, name = path.partition(":")
    if not module_name or not name:
        raise ConfigurationError(f"--transform {path!r}: expected module:function")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"--transform {path!r} does not load: {exc}") from exc
    if not callable(found):
        raise ConfigurationError(f"--transform {path!r} is not callable")
    return found  # type: ignore[no-any-return]


def plain(item: Item, names: frozenset[str] | None = None) -> dict[str, Any]:
    """The item (only its attributes in ``names``, when given) as plain values for a JMESPath
    filter: numbers as int (or float: JMESPath compares only those), sets as sorted lists,
    binary as bytes. Read straight from the wire form (no boto3 deserializer on the way)."""
    if names is None:
        return {name: _plain(value) for name, value in item.items()}
    return {name: _plain(item[name]) for name in names if name in item}


def _plain(value: Mapping[str, Any]) -> Any:
    (tag, data), *_ = value.items()
    if tag in ("S", "B", "BOOL"):
        return data
    if tag == "N":
        return _number(data)
    if tag == "M":
        return {k: _plain(v) for k, v in data.items()}
    if tag == "L":
        return [_plain(v) for v in data]
    if tag == "NS":
        return sorted(_number(v) for v in data)
    if tag in ("SS", "BS"):
        return sorted(data)
    return None  # NULL


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        value = Decimal(text)
        return int(value) if value == value.to_integral_value() else float(value)


# AST nodes that may read the whole item rather than named attributes of it.
_WHOLE_ITEM = frozenset({"current", "value_projection"})
_PROJECTIONS = frozenset({"projection", "filter_projection", "flatten", "value_projection"})


def filter_names(compiled: Any) -> frozenset[str] | None:
    """The attribute names a compiled filter may read (every field it names, at any depth: a
    superset), or None when it may read the whole item (``@``, ``*``, a projection of the
    item itself): what ``plain`` must convert."""
    names: set[str] = set()
    stack = [compiled.parsed]
    while stack:
        node = stack.pop()
        kind, children = node.get("type"), node.get("children", [])
        if kind in _WHOLE_ITEM:
            return None
        if kind in _PROJECTIONS and children and children[0].get("type") == "identity":
            return None
        if kind == "field":
            names.add(node["value"])
        stack.extend(c for c in children if isinstance(c, dict))
    return frozenset(names)


def _expired(item: Item, attribute: str) -> bool:
    found = item.get(attribute)
    if not isinstance(found, Mapping) or "N" not in found:
        return False  # DynamoDB's TTL ignores a missing or non-number attribute
    try:
        return Decimal(found["N"]) < Decimal(time.time())
    except ArithmeticError:
        return False
