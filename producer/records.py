"""Stream records, turned into small frozen dataclasses at the producer's edge.

Two sources: DynamoDB Streams (boto3's ``get_records`` output, binary as bytes, the creation time
a datetime) and Kinesis records whose ``Data`` is the JSON that "Kinesis Data Streams for
DynamoDB" writes (binary as base64, the creation time in epoch milliseconds or microseconds).
A Kinesis record holding only ``{"Keys": ...}`` (or ``{"dynamodb": {"Keys": ...}}``) is accepted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tasks.core.errors import InvalidInputError
from tasks.core.keys import Key

TTL_PRINCIPAL = "dynamodb.amazonaws.com"


class MalformedRecordError(InvalidInputError):
    """A stream record that cannot be used (logged, counted and skipped)."""


@dataclass(frozen=True)
class ChangeRecord:
    key: Key  # built once here; its canonical form and id travel with it
    event_name: str  # INSERT, MODIFY, REMOVE (or "" for keys-only records)
    created: float  # epoch seconds; 0.0 when the record carries no time
    sequence: str
    ttl_delete: bool


def _epoch(value: Any) -> float:
    """Creation time as epoch seconds, from a datetime or a number in s, ms or µs."""
    if isinstance(value, datetime):
        return value.timestamp()
    if value is None:
        return 0.0
    number = float(value)
    if number > 1e14:  # microseconds
        return number / 1e6
    if number > 1e11:  # milliseconds
        return number / 1e3
    return number


def _is_ttl_delete(raw: Mapping[str, Any]) -> bool:
    """A REMOVE made by DynamoDB's TTL. The DynamoDB Streams API names the identity's fields
    ``Type`` and ``PrincipalId``; the JSON that Kinesis (and Lambda) carry, ``type`` and
    ``principalId``."""
    if raw.get("eventName") != "REMOVE":
        return False
    identity = raw.get("userIdentity") or {}
    kind = identity.get("Type", identity.get("type"))
    return kind == "Service" and identity.get("PrincipalId", identity.get("principalId")) == (
        TTL_PRINCIPAL
    )


def _build(raw: Mapping[str, Any], sequence: str, keys: Any, fallback_time: Any) -> ChangeRecord:
    if not isinstance(keys, Mapping) or not keys:
        raise MalformedRecordError(f"stream record {sequence} has no Keys")
    body = raw.get("dynamodb") or {}
    try:
        created = _epoch(body.get("ApproximateCreationDateTime", fallback_time))
        return ChangeRecord(
            key=Key.of(keys),
            event_name=str(raw.get("eventName") or ""),
            created=created,
            sequence=sequence,
            ttl_delete=_is_ttl_delete(raw),
        )
    except (InvalidInputError, TypeError, ValueError) as exc:
        raise MalformedRecordError(f"stream record {sequence}: {exc}") from exc


def from_dynamodb_stream(raw: Mapping[str, Any]) -> ChangeRecord:
    body = raw.get("dynamodb")
    if not isinstance(body, Mapping):
        raise MalformedRecordError(f"stream record without a dynamodb body: {str(raw)[:120]}")
    sequence = str(body.get("SequenceNumber", ""))
    return _build(raw, sequence, body.get("Keys"), None)


def from_kinesis(raw: Mapping[str, Any]) -> ChangeRecord:
    sequence = str(raw.get("SequenceNumber", ""))
    try:
        data = json.loads(raw["Data"])
    except (KeyError, ValueError, TypeError) as exc:
        raise MalformedRecordError(f"Kinesis record {sequence} is not JSON") from exc
    if not isinstance(data, dict):
        raise MalformedRecordError(f"Kinesis record {sequence} is not a JSON object")
    body = data.get("dynamodb")
    keys = body.get("Keys", data.get("Keys")) if isinstance(body, dict) else data.get("Keys")
    return _build(data, sequence, keys, raw.get("ApproximateArrivalTimestamp"))
