"""The transform (pure): filter, TTL, exclude, rename, a callable; the key never changes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tasks.core.errors import ConfigurationError
from tasks.core.transform import KeyChangedError, TransformSpec, load

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
