from __future__ import annotations

import hashlib

import pytest

from tasks.core.errors import InvalidInputError, SchemaMismatchError
from tasks.core.keys import Key
from tasks.core.typed_json import (
    KeyAttribute,
    KeySchema,
    canonical_json,
    from_wire,
    items_equal,
    key_json,
    key_of,
    parse_key,
    to_wire,
)

SCHEMA = KeySchema(KeyAttribute("id", "S"), KeyAttribute("n", "N"))


def test_canonical_json_sorts_attributes_and_has_no_spaces() -> None:
    key = {"n": {"N": "5"}, "id": {"S": "record-1"}}
    assert canonical_json(key) == '{"id":{"S":"record-1"},"n":{"N":"5"}}'
    expected = hashlib.sha256(b'{"id":{"S":"record-1"}}').hexdigest()
    assert Key.of({"id": {"S": "record-1"}}).id == expected


def test_wire_round_trip_of_binary_anywhere() -> None:
    item = {
        "b": {"B": b"\x00\xff"},
        "bs": {"BS": [b"\x01"]},
        "m": {"M": {"l": {"L": [{"B": b"\x02"}, {"BS": [b"\x03"]}]}}},
    }
    wire = to_wire(item)
    assert wire["b"] == {"B": "AP8="} and wire["m"]["M"]["l"]["L"][0] == {"B": "Ag=="}
    assert from_wire(wire) == item
    assert from_wire(item) == item  # client form passes through


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ({"n": {"N": "1"}}, {"n": {"N": "1.0"}}, True),
        ({"n": {"N": "100"}}, {"n": {"N": "1E+2"}}, True),
        (
            {"n": {"N": "12345678901234567890123456789012345678"}},
            {"n": {"N": "12345678901234567890123456789012345679"}},
            False,
        ),
        ({"s": {"SS": ["a", "b"]}}, {"s": {"SS": ["b", "a"]}}, True),
        ({"s": {"NS": ["1", "2.0"]}}, {"s": {"NS": ["2", "1"]}}, True),
        ({"s": {"BS": [b"\x01", b"\x02"]}}, {"s": {"BS": ["AgA=", "AQ=="]}}, False),
        ({"s": {"BS": [b"\x01", b"\x02"]}}, {"s": {"BS": ["Ag==", "AQ=="]}}, True),
        ({"l": {"L": [{"N": "1"}, {"N": "2"}]}}, {"l": {"L": [{"N": "2"}, {"N": "1"}]}}, False),
        ({"m": {"M": {"a": {"SS": ["x", "y"]}}}}, {"m": {"M": {"a": {"SS": ["y", "x"]}}}}, True),
        ({"a": {"S": "1"}}, {"a": {"N": "1"}}, False),
        ({"a": {"S": ""}}, {"a": {"S": ""}, "b": {"NULL": True}}, False),
    ],
)
def test_dynamodb_equality(a: dict, b: dict, equal: bool) -> None:
    assert items_equal(a, b) is equal


def test_equality_ignores_named_attributes_and_handles_absence() -> None:
    assert items_equal(
        {"a": {"S": "x"}, "t": {"N": "1"}}, {"a": {"S": "x"}, "t": {"N": "2"}}, ignore=["t"]
    )
    assert items_equal(None, None) and not items_equal(None, {"a": {"S": "x"}})


def test_parse_key_plain_and_typed() -> None:
    assert parse_key('{"id":"abc","n":5}', SCHEMA) == {"id": {"S": "abc"}, "n": {"N": "5"}}
    assert parse_key('{"id":{"S":"abc"},"n":{"N":"5.50"}}', SCHEMA) == {
        "id": {"S": "abc"},
        "n": {"N": "5.50"},
    }
    binary = KeySchema(KeyAttribute("h", "B"))
    assert parse_key('{"h":{"B":"AP8="}}', binary) == {"h": {"B": b"\x00\xff"}}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"id":"abc"', InvalidInputError),
        ("[1]", InvalidInputError),
        ('{"id":"abc"}', SchemaMismatchError),
        ('{"id":"abc","n":1,"x":2}', SchemaMismatchError),
        ('{"id":{"N":"1"},"n":{"N":"1"}}', SchemaMismatchError),
        ('{"id":"","n":1}', InvalidInputError),
        ('{"id":"a","n":"one"}', InvalidInputError),
        ('{"id":{"S":"a"},"n":{"N":"1"},"extra":{"S":"x"}}', SchemaMismatchError),
    ],
)
def test_parse_key_rejects_what_does_not_fit(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_key(text, SCHEMA)


@pytest.mark.parametrize(
    "schema",
    [
        KeySchema(KeyAttribute("id", "S")),
        KeySchema(KeyAttribute("n", "N"), KeyAttribute("id", "S")),  # sorted by name, not role
        KeySchema(KeyAttribute('we"ird é', "B"), KeyAttribute("\u2028", "N")),
    ],
)
def test_key_json_is_canonical_json_of_the_key(schema: KeySchema) -> None:
    texts = ["a", "", 'q"uote\\back', "new\nline\t\x00", "é😀\u2028", "\ud800", "1E+1"]
    values = {
        "S": [{"S": t} for t in texts],
        "N": [{"N": n} for n in ("1", "-0.50", "1E+1", "10")],
        "B": [{"B": b"\x00\xff"}, {"B": bytearray(b"ab")}, {"B": "AP8="}],
    }
    write = key_json(schema)
    for i in range(20):
        item = {a.name: values[a.type][i % len(values[a.type])] for a in schema.attributes}
        item["other"] = {"SS": ["x"]}
        assert write(item) == canonical_json(key_of(item, schema))


def test_key_json_takes_the_general_path_for_unusual_items() -> None:
    write = key_json(KeySchema(KeyAttribute("id", "S")))
    assert write({"id": {"N": "1"}}) == '{"id":{"N":"1"}}'  # another type than the schema's
    with pytest.raises(InvalidInputError):
        write({"other": {"S": "x"}})
    with pytest.raises(InvalidInputError):
        write({"id": {"S": "a", "N": "1"}})


def test_key_of_gives_the_same_key_on_its_shortcut_for_strings_and_numbers() -> None:
    """Key.of skips the wire conversions when every attribute is a string or a number; the key
    is the one the conversions give (canonical form, id, wire and client forms)."""
    texts = ["a", "", 'q"uote\\back', "é😀\u2028", "1E+1"]
    keys = [{"id": {"S": t}} for t in texts] + [{"h": {"S": "a"}, "r": {"N": "-0.50"}}]
    for typed in keys:
        fast, general = Key.of(typed), Key._make(to_wire(typed), from_wire(to_wire(typed)))
        assert (fast.canonical, fast.id, fast.wire, fast.item) == (
            general.canonical,
            general.id,
            general.wire,
            general.item,
        )
        assert fast.item is not typed  # its own dict
    assert Key.of({"id": {"B": b"\x00"}}).wire == {"id": {"B": "AA=="}}  # not plain: converted
    with pytest.raises(InvalidInputError):
        Key.of({"id": {"X": "a"}})
    with pytest.raises(InvalidInputError):
        Key.of({"id": {"S": "a", "N": "1"}})
