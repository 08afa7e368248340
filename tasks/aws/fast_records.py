"""GetRecords pages (Kinesis, DynamoDB Streams) read with ``json.loads`` instead of botocore's
shape walker.

A producer reads every shard several times a second. botocore parses each record by walking the
operation's output shape field by field, its timestamps through dateutil's time zones, and on
DynamoDB Streams every attribute of the record's images too: about a quarter of the producer's
CPU. The records' JSON already is almost the client form; only three things differ:

* Kinesis ``Data`` is base64 on the wire, ``bytes`` in the client form;
* timestamps (``ApproximateArrivalTimestamp``, ``ApproximateCreationDateTime``) are epoch
  seconds on the wire, aware datetimes in the client form;
* binary key and image attributes are base64 on the wire, ``bytes`` in the client form.

``install`` hooks botocore's ``before-parse`` event for both GetRecords: the records are read
here and botocore parses what is left of the body (``NextShardIterator``, ``MillisBehindLatest``,
``ChildShards``) as usual. The response is the dict botocore would return. Anything unexpected
(an error response, a record of another shape) leaves the response untouched for botocore.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from tasks.aws.fast_scan import parse_items, take_member

_ID = "replicator-fast-records"
_IMAGES = ("Keys", "NewImage", "OldImage")


def install(client: Any) -> None:
    """Parse the records of this client's GetRecords responses here (Kinesis or DynamoDB
    Streams; any other client, or a stand-in without botocore's events, is left as it is)."""
    meta = getattr(client, "meta", None)
    events: Any = getattr(meta, "events", None)
    service: Any = getattr(meta, "service_model", None)
    parse = _parser(service) if events is not None and service is not None else None
    if parse is None:
        return

    def take_records(
        response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
    ) -> None:
        take_member(
            response_dict, customized_response_dict, "Records", lambda rs: [parse(r) for r in rs]
        )

    prefix = service.service_id.hyphenize()
    events.register(f"before-parse.{prefix}.GetRecords", take_records, unique_id=_ID)


def _parser(service: Any) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """The record reader for this service, knowing the fields its model has (a record with any
    other field is left to botocore, which drops what it does not know)."""
    if service.service_name not in ("kinesis", "dynamodbstreams"):
        return None
    shape = service.operation_model("GetRecords").output_shape.members["Records"].member
    fields = frozenset(shape.members)
    if service.service_name == "kinesis":
        return partial(kinesis_record, fields)
    body, identity = (frozenset(shape.members[n].members) for n in ("dynamodb", "userIdentity"))
    return partial(stream_record, fields, body, identity)


def _known(fields: frozenset[str], value: dict[str, Any]) -> dict[str, Any]:
    if not fields.issuperset(value):
        raise KeyError(f"fields the model does not have: {sorted(set(value) - fields)}")
    return value


def _time(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not an epoch timestamp: {value!r}")
    return datetime.fromtimestamp(value, UTC)


def kinesis_record(fields: frozenset[str], record: dict[str, Any]) -> dict[str, Any]:
    """A Kinesis record as botocore gives it: ``Data`` as bytes, the arrival time a datetime."""
    _known(fields, record)
    record["Data"] = base64.b64decode(record["Data"], validate=True)
    if "ApproximateArrivalTimestamp" in record:
        record["ApproximateArrivalTimestamp"] = _time(record["ApproximateArrivalTimestamp"])
    return record


def stream_record(
    fields: frozenset[str],
    body_fields: frozenset[str],
    identity: frozenset[str],
    record: dict[str, Any],
) -> dict[str, Any]:
    """A DynamoDB Streams record as botocore gives it: the creation time a datetime, binary
    attributes of its key and images as bytes."""
    _known(fields, record)
    _known(identity, record.get("userIdentity", {}))
    body = _known(body_fields, record.get("dynamodb", {}))
    if "ApproximateCreationDateTime" in body:
        body["ApproximateCreationDateTime"] = _time(body["ApproximateCreationDateTime"])
    present = [name for name in _IMAGES if name in body]
    for name, image in zip(present, parse_items([body[n] for n in present]), strict=True):
        body[name] = image
    return record
