"""A JMESPath filter turned into Python closures, for the node types filters are made of.

jmespath's interpreter walks the expression's tree for every item, which costs more than the
rest of a transform together. ``compile_tree`` turns a parsed expression (``jmespath.compile``'s
``parsed``) into nested closures once, for fields, literals, comparisons, ``&&``, ``||``, ``!``,
sub-expressions, indexes and function calls; it answers None for any other node, and the
interpreter runs that expression instead. Each closure does what jmespath's ``TreeInterpreter``
does for its node, by the same rules (JMESPath's equality, where 0 and 1 are not booleans; order
only between numbers or between strings; its false values; jmespath's own built-in functions),
so the answers are the same (the unit tests compare them on many expressions and items).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from numbers import Number
from typing import Any

from jmespath import functions

Compiled = Callable[[Any], Any]
_FUNCTIONS = functions.Functions()


def _number(x: Any) -> bool:
    return isinstance(x, Number) and not isinstance(x, bool)


def _equals(x: Any, y: Any) -> bool:
    if (_number(x) and x in (0, 1) and isinstance(y, bool)) or (
        _number(y) and y in (0, 1) and isinstance(x, bool)
    ):
        return False  # 0 == false and 1 == true in Python, not in JMESPath
    return bool(x == y)


def _comparable(x: Any) -> bool:
    return _number(x) or isinstance(x, str)


def _is_false(value: Any) -> bool:
    return value in ("", [], {}) or value is None or value is False


_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    "lt": operator.lt,
    "gt": operator.gt,
    "lte": operator.le,
    "gte": operator.ge,
}


def compile_tree(node: Mapping[str, Any]) -> Compiled | None:
    """Closures for ``node``, or None when it holds a node type left to the interpreter."""
    kind = node.get("type")
    build = _BUILDERS.get(str(kind))
    return build(node) if build else None


def _children(node: Mapping[str, Any]) -> list[Compiled] | None:
    found = [compile_tree(child) for child in node["children"]]
    return None if any(f is None for f in found) else found  # type: ignore[return-value]


def _field(node: Mapping[str, Any]) -> Compiled:
    name = node["value"]

    def field(value: Any) -> Any:
        return value.get(name) if isinstance(value, dict) else None

    return field


def _literal(node: Mapping[str, Any]) -> Compiled:
    constant = node["value"]
    return lambda _: constant


def _comparator(node: Mapping[str, Any]) -> Compiled | None:
    parts = _children(node)
    if parts is None:
        return None
    left, right = parts
    op = node["value"]
    if op == "eq":
        return lambda value: _equals(left(value), right(value))
    if op == "ne":
        return lambda value: not _equals(left(value), right(value))
    compare = _ORDER[op]

    def ordered(value: Any) -> Any:
        a, b = left(value), right(value)
        if not (_comparable(a) and _comparable(b)):
            return None  # order is only between numbers or strings
        return compare(a, b)

    return ordered


def _and(node: Mapping[str, Any]) -> Compiled | None:
    parts = _children(node)
    if parts is None:
        return None
    left, right = parts

    def both(value: Any) -> Any:
        matched = left(value)
        return matched if _is_false(matched) else right(value)

    return both


def _or(node: Mapping[str, Any]) -> Compiled | None:
    parts = _children(node)
    if parts is None:
        return None
    left, right = parts

    def either(value: Any) -> Any:
        matched = left(value)
        return right(value) if _is_false(matched) else matched

    return either


def _not(node: Mapping[str, Any]) -> Compiled | None:
    parts = _children(node)
    if parts is None:
        return None
    (inner,) = parts

    def negated(value: Any) -> Any:
        found = inner(value)
        if _number(found) and found == 0:
            return False  # !0 is false: 0 is not a false value in JMESPath
        return not found

    return negated


def _chain(node: Mapping[str, Any]) -> Compiled | None:
    """A sub-expression (``a.b``) or an index expression (``a[0]``): each child on the last's
    result."""
    parts = _children(node)
    if parts is None:
        return None

    def chained(value: Any) -> Any:
        for part in parts:
            value = part(value)
        return value

    return chained


def _index(node: Mapping[str, Any]) -> Compiled:
    position = node["value"]

    def index(value: Any) -> Any:
        if not isinstance(value, list):
            return None
        try:
            return value[position]
        except IndexError:
            return None

    return index


def _function(node: Mapping[str, Any]) -> Compiled | None:
    parts = _children(node)
    if parts is None:
        return None
    name = node["value"]
    return lambda value: _FUNCTIONS.call_function(name, [part(value) for part in parts])


def _current(_: Mapping[str, Any]) -> Compiled:
    return lambda value: value


_BUILDERS: dict[str, Callable[[Mapping[str, Any]], Compiled | None]] = {
    "current": _current,
    "field": _field,
    "literal": _literal,
    "comparator": _comparator,
    "and_expression": _and,
    "or_expression": _or,
    "not_expression": _not,
    "subexpression": _chain,
    "index_expression": _chain,
    "index": _index,
    "function_expression": _function,
}
