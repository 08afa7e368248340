"""A reproducible mix of puts, updates and deletes with every DynamoDB type."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

from tasks.core.typed_json import to_wire

OnChange = Callable[[dict[str, Any], str], None]


def value_of_every_type(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "s": {"S": f"text-{i}-é✓" + "x" * rng.randint(0, 40)},
        "empty": {"S": ""},
        "n": {"N": str(rng.randint(-(10**37), 10**37))},
        "dec": {"N": f"{rng.randint(0, 10**6)}.{rng.randint(0, 999):03d}"},
        "b": {"B": rng.randbytes(rng.randint(0, 16))},
        "ss": {"SS": sorted({f"t{rng.randint(0, 9)}" for _ in range(3)})},
        "ns": {"NS": sorted({str(rng.randint(0, 50)) for _ in range(3)})},
        "bs": {"BS": list({bytes([rng.randint(0, 255)]) for _ in range(2)})},
        "m": {
            "M": {
                "deep": {"L": [{"N": str(i)}, {"BOOL": bool(i % 2)}, {"SS": ["a", "b"]}]},
                "nul": {"NULL": True},
            }
        },
        "l": {"L": [{"S": "x"}, {"M": {"bs": {"BS": [b"\x00", b"\x01"]}}}]},
        "flag": {"BOOL": rng.random() < 0.5},
    }


def key_for(rng: random.Random, schema: str, n_keys: int) -> dict[str, Any]:
    i = rng.randrange(n_keys)
    if schema == "binary":
        return {"id": {"B": i.to_bytes(2, "big") + b"\xff"}}
    return {"id": {"S": f"user-{i % 40}"}, "seq": {"N": str(i)}}


def apply_mixed(
    ddb: Any,
    table: str,
    schema: str,
    ops: int,
    n_keys: int,
    seed: int,
    on_change: OnChange | None = None,
) -> None:
    """Apply ``ops`` puts (50%), updates (30%) and deletes (20%) to ``table``."""
    rng = random.Random(seed)
    for i in range(ops):
        key = key_for(rng, schema, n_keys)
        roll = rng.random()
        if roll < 0.5:
            ddb.put_item(TableName=table, Item={**key, **value_of_every_type(rng, i)})
            event = "INSERT"
        elif roll < 0.8:
            ddb.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="SET #c = :c, n = :n ADD hits :one",
                ExpressionAttributeNames={"#c": "counter"},
                ExpressionAttributeValues={
                    ":c": {"N": str(i)},
                    ":n": {"N": str(-i)},
                    ":one": {"N": "1"},
                },
            )
            event = "MODIFY"
        else:
            ddb.delete_item(TableName=table, Key=key)
            event = "REMOVE"
        if on_change:
            on_change(key, event)


def kinesis_record(key: dict[str, Any], event: str, keys_only: bool = False) -> bytes:
    """The JSON "Kinesis Data Streams for DynamoDB" writes for a change (or just its keys)."""
    if keys_only:
        return json.dumps({"Keys": to_wire(key)}).encode()
    return json.dumps(
        {
            "awsRegion": "us-east-1",
            "eventID": f"{time.time_ns()}",
            "eventName": event,
            "userIdentity": None,
            "recordFormat": "application/json",
            "tableName": "primary",
            "dynamodb": {
                "ApproximateCreationDateTime": int(time.time() * 1000),
                "Keys": to_wire(key),
                "SizeBytes": 10,
            },
            "eventSource": "aws:dynamodb",
        }
    ).encode()
