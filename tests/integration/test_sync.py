"""The shared primary-fetch / replica-write code against moto over HTTP and a real Redis."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tasks.coord import deadletters, stats
from tasks.coord.guard import StaleWriteGuard
from tasks.coord.redis_conn import connection
from tasks.core.keys import Key
from tasks.core.locations import REPLICA
from tasks.replication.sync import ReplicaSink, sync_keys
from tests.support.tables import client, create_table, normalized_table, table

EVERY_TYPE = {
    "id": {"S": "all-types"},
    "s": {"S": "héllo ✓"},
    "empty_s": {"S": ""},
    "n": {"N": "12345678901234567890123456789012345678"},
    "small": {"N": "-0.000000000000000000000000000000000001"},
    "b": {"B": b"\x00\x01\xff"},
    "empty_b": {"B": b""},
    "ss": {"SS": ["a", "b", "c"]},
    "ns": {"NS": ["1", "2.5", "-3"]},
    "bs": {"BS": [b"\x00", b"\x01"]},
    "m": {
        "M": {"nested": {"L": [{"S": "x"}, {"N": "1"}, {"BS": [b"\x02"]}]}, "flag": {"BOOL": True}}
    },
    "l": {"L": [{"NULL": True}, {"BOOL": False}, {"M": {"ss": {"SS": ["z"]}}}]},
    "nul": {"NULL": True},
}


def _keys(keys: list[dict[str, Any]]) -> list[Key]:
    return [Key.of(k) for k in keys]


def _tables(
    moto_url: str, hash_key: tuple[str, str] = ("id", "S"), range_key: tuple[str, str] | None = None
) -> tuple[str, str]:
    create_table(moto_url, "primary", hash_key, range_key)
    create_table(moto_url, "replica", hash_key, range_key)
    return f"{moto_url}/primary", f"{moto_url}/replica"


def test_puts_present_and_deletes_absent_items_of_every_type(
    env: dict[str, str], moto_url: str
) -> None:
    primary, replica = _tables(moto_url)
    ddb = client(moto_url)
    big = {"id": {"S": "big"}, "blob": {"B": b"x" * 399_000}}
    ddb.put_item(TableName="primary", Item=EVERY_TYPE)
    ddb.put_item(TableName="primary", Item=big)
    ddb.put_item(TableName="replica", Item={"id": {"S": "gone"}, "v": {"S": "stale"}})

    keys = [{"id": {"S": "all-types"}}, {"id": {"S": "big"}}, {"id": {"S": "gone"}}]
    outcome = sync_keys(table(primary), ReplicaSink(table(replica, REPLICA)), _keys(keys))

    assert (outcome.puts, outcome.deletes, outcome.failed) == (2, 1, {})
    assert normalized_table(moto_url, "replica") == normalized_table(moto_url, "primary")
    counts = stats.read(connection(), str(table(replica)))
    assert counts["reads"] == 3 and counts["puts"] == 2 and counts["deletes"] == 1


def test_binary_and_numeric_composite_keys(env: dict[str, str], moto_url: str) -> None:
    primary, replica = _tables(moto_url, ("h", "B"), ("r", "N"))
    ddb = client(moto_url)
    items = [
        {"h": {"B": bytes([i, 0, 255])}, "r": {"N": str(i * 1.5)}, "v": {"N": str(i)}}
        for i in range(1, 130)
    ]
    for item in items:
        ddb.put_item(TableName="primary", Item=item)
    keys = [{"h": i["h"], "r": i["r"]} for i in items]

    outcome = sync_keys(table(primary), ReplicaSink(table(replica, REPLICA)), _keys(keys))

    assert outcome.puts == len(items) and not outcome.failed
    assert normalized_table(moto_url, "replica") == normalized_table(moto_url, "primary")


def test_key_that_does_not_fit_the_schema_fails_permanently(
    env: dict[str, str], moto_url: str
) -> None:
    primary, replica = _tables(moto_url)
    outcome = sync_keys(
        table(primary),
        ReplicaSink(table(replica, REPLICA)),
        _keys([{"id": {"N": "1"}}, {"other": {"S": "x"}}]),
    )
    assert len(outcome.failed) == 2
    assert all(not f.retryable for f in outcome.failed.values())


def test_schema_mismatch_is_a_clear_error(env: dict[str, str], moto_url: str) -> None:
    from tasks.core.errors import SchemaMismatchError

    create_table(moto_url, "primary", ("id", "S"))
    create_table(moto_url, "replica", ("pk", "S"))
    with pytest.raises(SchemaMismatchError, match="key schemas differ"):
        sync_keys(
            table(f"{moto_url}/primary"),
            ReplicaSink(table(f"{moto_url}/replica", REPLICA)),
            _keys([{"id": {"S": "a"}}]),
        )


def test_dead_letters_round_trip(env: dict[str, str], redis_client: object) -> None:
    key = {"id": {"B": base64.b64encode(b"\x01").decode()}}
    import json

    deadletters.record(
        connection(),
        "replicate",
        "us-east-1/a",
        "us-east-1/b",
        {json.dumps(key, separators=(",", ":")): "boom"},
        3,
    )
    ((raw, entry),) = deadletters.entries(connection())
    assert entry.key == key and entry.reason == "boom" and entry.attempts == 3
    assert deadletters.remove(connection(), [raw]) == 1
    assert deadletters.entries(connection()) == []


def test_pending_marks_coalesce_until_released_or_stale(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.coord import pending
    from tasks.core import config

    client = connection()
    assert pending.mark(client, "t", "s1", ["a", "b"]) == [True, True]
    assert pending.mark(client, "t", "s1", ["a", "c"]) == [False, True]
    assert pending.mark(client, "t", "s2", ["a"]) == [True]  # another producer run
    StaleWriteGuard(client, "t").claim(["a"], pending.release("t", "s1", ["a"]))  # a task began
    assert pending.mark(client, "t", "s1", ["a", "b"]) == [True, False]

    monkeypatch.setenv("REPLICATOR_PENDING_TTL", "0.01")
    config.reset()
    import time

    time.sleep(0.05)
    assert pending.mark(client, "t", "s1", ["b"]) == [True]  # a lost message cannot pin a key
