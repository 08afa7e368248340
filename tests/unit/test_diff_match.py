"""DynamoDB equality of every type (scan digests and confirmed reads agree) and ownership."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tasks.core.typed_json import item_digest, items_equal
from tasks.diff.match import PAIR, PRIMARY_ONLY, REPLICA_ONLY, Matcher, differing_attributes, judge

# (a, b, equal by DynamoDB's rules)
CASES: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    ({"S": "a"}, {"S": "a"}, True),
    ({"S": "a"}, {"S": "A"}, False),
    ({"N": "10"}, {"N": "10.0"}, True),
    ({"N": "1E+1"}, {"N": "10"}, True),
    ({"N": "-0.50"}, {"N": "-.5"}, True),
    (
        {"N": "12345678901234567890123456789012345678"},
        {"N": "12345678901234567890123456789012345679"},
        False,
    ),
    ({"N": "1"}, {"S": "1"}, False),
    ({"B": b"\x00\xff"}, {"B": base64.b64encode(b"\x00\xff").decode()}, True),
    ({"B": b"\x00\xff"}, {"B": b"\x00\xfe"}, False),
    ({"SS": ["a", "b"]}, {"SS": ["b", "a"]}, True),
    ({"SS": ["a", "b"]}, {"SS": ["a"]}, False),
    ({"NS": ["1", "2.50"]}, {"NS": ["2.5", "1.0"]}, True),
    ({"BS": [b"\x01", b"\x02"]}, {"BS": [base64.b64encode(b"\x02").decode(), b"\x01"]}, True),
    ({"L": [{"N": "1"}, {"S": "x"}]}, {"L": [{"S": "x"}, {"N": "1"}]}, False),
    ({"L": [{"N": "1.0"}]}, {"L": [{"N": "1"}]}, True),
    (
        {"M": {"a": {"N": "1"}, "b": {"SS": ["x", "y"]}}},
        {"M": {"b": {"SS": ["y", "x"]}, "a": {"N": "1.00"}}},
        True,
    ),
    ({"M": {"a": {"N": "1"}}}, {"M": {"a": {"N": "1"}, "b": {"NULL": True}}}, False),
    ({"BOOL": True}, {"BOOL": True}, True),
    ({"BOOL": True}, {"BOOL": False}, False),
    ({"NULL": True}, {"NULL": True}, True),
    ({"NULL": True}, {"BOOL": False}, False),
]


@pytest.mark.parametrize(("a", "b", "equal"), CASES)
def test_every_type_compares_by_dynamodb_rules(a: Any, b: Any, equal: bool) -> None:
    left, right = {"id": {"S": "k"}, "x": a}, {"id": {"S": "k"}, "x": b}
    assert items_equal(left, right) is equal
    assert (item_digest(left) == item_digest(right)) is equal
    assert (judge(PAIR, left, right) is None) is equal


def test_ignored_attributes_do_not_count() -> None:
    left = {"id": {"S": "k"}, "at": {"N": "1"}, "v": {"S": "a"}}
    right = {"id": {"S": "k"}, "at": {"N": "2"}, "v": {"S": "a"}}
    assert item_digest(left, ["at"]) == item_digest(right, ["at"])
    assert judge(PAIR, left, right, ["at"]) is None
    assert differing_attributes(left, right) == ["at"]


def test_a_segment_reports_only_what_it_owns() -> None:
    item = {"id": {"S": "k"}}
    assert judge(PAIR, item, None) == "missing"
    assert judge(PAIR, None, item) == "extraneous"
    # a primary-only key whose primary item vanished: the replica's segment reports it
    assert judge(PRIMARY_ONLY, None, item) is None
    assert judge(PRIMARY_ONLY, item, None) == "missing"
    # a replica-only key the primary has now: the primary's segment reports it
    assert judge(REPLICA_ONLY, item, {"id": {"S": "k"}, "v": {"N": "1"}}) is None
    assert judge(REPLICA_ONLY, None, item) == "extraneous"
    assert judge(PAIR, None, None) is None


def test_matcher_pairs_keys_and_bounds_waiting_keys() -> None:
    matcher = Matcher(limit=2)
    assert matcher.offer("primary", [("a", "1"), ("b", "2"), ("c", "3")]).pairs == 0
    assert matcher.overflow("primary") == [("a", "1")]
    offer = matcher.offer("replica", [("b", "2"), ("c", "9"), ("d", "4")])
    assert (offer.pairs, offer.differ) == (2, ["c"])
    restored = Matcher.from_json(matcher.to_json(), 2)
    assert restored.waiting == {"primary": {}, "replica": {"d": "4"}}
