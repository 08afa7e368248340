"""Scan pages parsed straight from DynamoDB's JSON instead of by botocore's shape walker.

botocore turns a response into Python by walking the operation's output shape value by value.
DynamoDB's JSON already is the typed form items keep here (``{"id": {"S": "a"}}``); only binary
differs (base64 on the wire, ``bytes`` in the client form). For a scanned page, walking the shape
of every attribute of every item costs about five times what ``json.loads`` does, and it was
most of a diff worker's CPU.

``install`` hooks botocore's ``before-parse`` event for Scan: the page's items are read with
``json.loads`` (``from_wire`` decodes binary, in the few items that have any), and botocore parses
what is left of the body (counts, LastEvaluatedKey, consumed capacity) as usual. The response is
the dict botocore would return. Anything unexpected (an error response, a body that is not a
list of typed items) leaves the response untouched for botocore.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from itertools import chain
from typing import Any

from tasks.core.errors import InvalidInputError
from tasks.core.typed_json import Item, from_wire

EVENT = "before-parse.dynamodb.Scan"
# Types whose JSON is already the client form (no binary inside).
_AS_IS = frozenset({"S", "N", "SS", "NS", "BOOL", "NULL"})


def install(client: Any) -> None:
    """Parse this client's Scan pages with ``parse_items``."""
    client.meta.events.register(EVENT, _take_items)


def parse_items(items: list[Any]) -> list[Item]:
    """Typed items as DynamoDB's JSON has them, in the client form (binary as bytes)."""
    return [item if _as_is(item) else from_wire(item) for item in items]


def _as_is(item: Mapping[str, Any]) -> bool:
    """Whether every value's type tags (its keys) are among ``_AS_IS``: then botocore's parse
    would give the same dicts."""
    return _AS_IS.issuperset(chain.from_iterable(item.values()))


def _take_items(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """botocore's hook: parse the items here, leave the rest of the body to botocore."""
    take_member(response_dict, customized_response_dict, "Items", parse_items)


def take_member(
    response_dict: dict[str, Any],
    customized_response_dict: dict[str, Any],
    name: str,
    parse: Callable[[Any], Any],
) -> None:
    """The body of a ``before-parse`` hook: member ``name`` of a successful response's JSON is
    read by ``parse`` and handed to botocore as parsed; botocore parses what is left of the
    body. When the body or the member does not read (``parse`` raises), botocore gets it all."""
    if response_dict.get("status_code") != 200:
        return
    try:
        body = json.loads(response_dict["body"])
        value = parse(body.pop(name))
    except (ValueError, KeyError, TypeError, AttributeError, InvalidInputError):
        return
    customized_response_dict[name] = value
    response_dict["body"] = json.dumps(body).encode("utf-8")
