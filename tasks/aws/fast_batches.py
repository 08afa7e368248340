"""BatchGetItem and BatchWriteItem without botocore's shape walkers, in and out.

botocore checks every request value against the operation's input shape, serializes it by
walking the shape again, and parses every response by walking the output shape: for the batches
a replicate task sends (100 keys read, 25 items a write) that was more CPU than the rest of the
task. DynamoDB's JSON already is the typed form items keep here; only binary differs (base64 on
the wire, ``bytes`` in the client form).

``install`` hooks three of botocore's events on a DynamoDB client:

* ``before-parameter-build`` (BatchGetItem, BatchWriteItem): the request body is written here
  with ``json.dumps`` (``to_wire`` for the few items with binary) and botocore is left a one-key
  stand-in with the same tables to validate and serialize, which keeps its endpoint rules and
  headers as they are;
* ``before-call``: the stand-in's body is replaced by the real one, before signing;
* ``before-parse`` (BatchGetItem): the items of ``Responses`` are read with ``json.loads``
  (``fast_scan.parse_items``), botocore parses the rest (``UnprocessedKeys``, capacity).

The response is the dict botocore would return, and the request the body it would send. Anything
unexpected (parameters other than ``RequestItems`` and
``ReturnConsumedCapacity``, a value that is not typed JSON, an error response) is left to
botocore untouched, which then validates and reports it as usual.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from itertools import chain
from typing import Any

from tasks.aws.fast_scan import parse_items, take_member
from tasks.core.errors import InvalidInputError
from tasks.core.typed_json import to_wire

OPERATIONS = ("BatchGetItem", "BatchWriteItem")
_BODY = "replicator_body"  # where the real body waits in botocore's request context
_AS_IS = frozenset({"S", "N", "SS", "NS", "BOOL", "NULL"})
_OURS = frozenset({"RequestItems", "ReturnConsumedCapacity"})  # the parameters written here
_KEY: dict[str, Any] = {"k": {"S": "k"}}
_STAND_INS: dict[str, Any] = {
    "BatchGetItem": {"Keys": [_KEY]},
    "BatchWriteItem": [{"DeleteRequest": {"Key": _KEY}}],
}


def install(client: Any) -> None:
    """Serialize this client's batch requests and parse its BatchGetItem responses here."""
    events = client.meta.events
    for operation in OPERATIONS:
        events.register(f"before-parameter-build.dynamodb.{operation}", _write_body)
        events.register(f"before-call.dynamodb.{operation}", _swap_body)
    events.register("before-parse.dynamodb.BatchGetItem", _take_responses)


def wire(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """An item or key as DynamoDB's JSON has it (the same dict when it holds no binary)."""
    if _AS_IS.issuperset(chain.from_iterable(item.values())):
        return item
    return to_wire(item)


def request_body(
    operation: str, request_items: Mapping[str, Any], consumed: str | None = None
) -> bytes:
    """The JSON body of a BatchGetItem or BatchWriteItem with these ``RequestItems`` (and
    ``ReturnConsumedCapacity``, when asked)."""
    if operation == "BatchGetItem":
        tables: dict[str, Any] = {
            name: {**spec, "Keys": [wire(key) for key in spec["Keys"]]}
            for name, spec in request_items.items()
        }
    else:
        tables = {name: [_wire_request(r) for r in rs] for name, rs in request_items.items()}
    body: dict[str, Any] = {"RequestItems": tables}
    if consumed is not None:
        body["ReturnConsumedCapacity"] = consumed
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def _wire_request(request: Mapping[str, Any]) -> dict[str, Any]:
    if "PutRequest" in request:
        return {"PutRequest": {"Item": wire(request["PutRequest"]["Item"])}}
    return {"DeleteRequest": {"Key": wire(request["DeleteRequest"]["Key"])}}


def _write_body(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    """botocore's hook: write the body, leave botocore a stand-in with the same tables."""
    items = params.get("RequestItems")
    if not set(params) <= _OURS or not isinstance(items, dict) or not items:
        return
    try:
        body = request_body(model.name, items, params.get("ReturnConsumedCapacity"))
    except (KeyError, TypeError, ValueError, AttributeError, InvalidInputError):
        return
    context[_BODY] = body
    params["RequestItems"] = dict.fromkeys(items, _STAND_INS[model.name])


def _swap_body(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """botocore's hook: the stand-in's serialized body becomes the real one."""
    body = context.pop(_BODY, None)
    if body is not None:
        params["body"] = body


def _take_responses(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """botocore's hook: parse ``Responses`` here, leave the rest of the body to botocore."""
    take_member(
        response_dict,
        customized_response_dict,
        "Responses",
        lambda tables: {name: parse_items(items) for name, items in tables.items()},
    )
