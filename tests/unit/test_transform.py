"""The transform (pure): filter, TTL, exclude, rename, a callable; the key never changes."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest
from jmespath.exceptions import JMESPathError

from tasks.core.errors import ConfigurationError
from tasks.core.fast_filter import compile_tree
from tasks.core.transform import (
    KeyChangedError,
    TransformSpec,
    compile_filter,
    filter_names,
    load,
    plain,
)

ITEM: dict[str, Any] = {
    "id": {"S": "a"},
    "kind": {"S": "public"},
    "ssn": {"S": "123"},
    "userId": {"S": "u1"},
    "tags": {"SS": ["x", "y"]},
    "n": {"N": "3"},
}


def shout(item: dict[str, Any]) -> dict[str, Any] | None:
    return {**item, "kind": {"S": item["kind"]["S"].upper()}}


def rekey(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "id": {"S": "other"}}


def test_the_steps_in_order() -> None:
    spec = TransformSpec(
        exclude=("ssn",),
        rename=(("userId", "user_id"),),
        filter="kind != 'internal' && length(tags) > `0` && n >= `3`",
        callable="tests.unit.test_transform:shout",
    )
    t = load(spec, ["id"])

    out = t(ITEM)

    assert out is not None and "ssn" not in out and out["user_id"] == {"S": "u1"}
    assert "userId" not in out and out["kind"] == {"S": "PUBLIC"}
    assert t({**ITEM, "kind": {"S": "internal"}}) is None
    assert t({**ITEM, "n": {"N": "2.5"}}) is None
    assert len(spec.identity) == 12 and TransformSpec().identity == ""
    assert TransformSpec.from_params(spec.to_params()) == spec


def test_expired_items_are_absent() -> None:
    t = load(TransformSpec(skip_expired=True, ttl_attribute="expires"), ["id"])

    assert t({**ITEM, "expires": {"N": str(int(time.time()) - 10)}}) is None
    assert t({**ITEM, "expires": {"N": str(int(time.time()) + 100)}}) is not None
    assert t({**ITEM, "expires": {"S": "not a number"}}) is not None
    assert t(ITEM) is not None


def test_a_key_never_changes() -> None:
    t = load(TransformSpec(callable="tests.unit.test_transform:rekey"), ["id"])

    with pytest.raises(KeyChangedError, match="changed the key"):
        t(ITEM)
    with pytest.raises(ConfigurationError, match="key attribute"):
        load(TransformSpec(exclude=("id",)), ["id"])
    with pytest.raises(ConfigurationError, match="key attribute"):
        load(TransformSpec(rename=(("userId", "id"),)), ["id"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (TransformSpec(filter="kind == "), "--filter .* does not parse"),
        (TransformSpec(callable="no_such_module:f"), "--transform .* does not load"),
        (TransformSpec(callable="json"), "expected module:function"),
        (TransformSpec(callable="tests.unit.test_transform:ITEM"), "is not callable"),
    ],
)
def test_bad_definitions_are_refused(spec: TransformSpec, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load(spec, ["id"])


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("kind != 'internal' && length(tags) > `0`", {"kind", "tags"}),
        ("tags[?x == `1`]", {"tags", "x"}),
        ("[kind, v]", {"kind", "v"}),
        ("keys(@)", None),
        ("length(@) > `2`", None),
        ("*.x", None),
        ("values(@)", None),
    ],
)
def test_a_filter_converts_only_the_attributes_it_names(
    expression: str, names: set[str] | None
) -> None:
    """What the filter reads (a superset of the fields it names), or the whole item when it
    reads the item itself; the result is the same either way."""
    compiled = compile_filter(expression)
    found = filter_names(compiled)
    assert found == (None if names is None else frozenset(names))
    item = {
        "id": {"S": "a"},
        "kind": {"S": "public"},
        "tags": {"L": [{"M": {"x": {"N": "1"}}}]},
        "v": {"N": "1E+1"},
        "x": {"M": {"a": {"SS": ["b", "a"]}}},
    }
    assert compiled.search(plain(item, found)) == compiled.search(plain(item))


EXPRESSIONS = [
    "kind != 'internal' && length(tags) > `0`",
    "v >= `0` && length(pad) > `0`",
    "v > `5` || kind == 'x'",
    "!archived",
    "!v",
    "!(v < `3`)",
    "v == `1`",
    "flag == `true`",
    "flag != `1`",
    "name < 'm'",
    "a.b[0] == `2`",
    "contains(tags, 'x')",
    "starts_with(kind, 'pub')",
    "tags[0]",
    "tags[-1] == 'z'",
    "length(@) > `3`",
    "kind",
    "missing == null",
    "v >= name",
    "`0` && kind",
    "`[]` || v",
]


def _value(rng: random.Random, depth: int = 0) -> Any:
    choices: list[Any] = [0, 1, 2, 5.5, -1, True, False, None, "", "x", "pub", "internal", "z"]
    if depth < 2:
        choices += [[], {}, ["x", "z"], [1, 2], {"b": [2, 3]}, {"b": "2"}]
    return rng.choice(choices)


def test_the_compiled_filter_answers_as_jmespaths_interpreter() -> None:
    """Every expression on many items: the closures and jmespath's interpreter agree (the
    same error too, when a function or an order is given the wrong types)."""
    rng = random.Random(7)
    names = ("kind", "tags", "v", "pad", "archived", "flag", "name", "a", "missing")
    for text in EXPRESSIONS:
        parsed = compile_filter(text)
        fast = compile_tree(parsed.parsed)
        assert fast is not None or "@" in text, text
        if fast is None:
            continue
        for _ in range(400):
            item = {n: _value(rng) for n in rng.sample(names, rng.randrange(len(names)))}
            try:
                expected: Any = parsed.search(item)
            except (JMESPathError, TypeError) as exc:
                expected = type(exc)
            try:
                found: Any = fast(item)
            except (JMESPathError, TypeError) as exc:
                found = type(exc)
            assert found == expected and type(found) is type(expected), (text, item)


def test_nodes_left_to_the_interpreter() -> None:
    for text in ("tags[?x == `1`]", "*.x", "a | b", "[kind, v]", "{k: kind}", "tags[*]"):
        assert compile_tree(compile_filter(text).parsed) is None, text
