"""Replication through a transform, in real worker processes: excluded, renamed, filtered out
(an item that stops matching leaves the replica), expired, a callable; a key change and a
transform a worker cannot load are dead-lettered, never written untransformed."""

from __future__ import annotations

import time
from typing import Any

from tasks.coord import deadletters
from tasks.coord.redis_conn import connection
from tasks.core.transform import TransformSpec
from tests.support.servers import wait_until
from tests.support.tables import client, create_table, normalized_table, scan_all

SPEC = TransformSpec(
    exclude=("ssn",),
    rename=(("userId", "user_id"),),
    filter="kind != 'internal'",
    skip_expired=True,
    ttl_attribute="expires",
    callable="tests.unit.test_transform:shout",
)


def _send(env: dict[str, str], moto_url: str, keys: list[str], spec: TransformSpec) -> None:
    from worker.app import app

    app.conf.broker_url = env["CELERY_BROKER_URL"]
    wire = [{"id": {"S": k}} for k in keys]
    app.send_task(
        "replicate",
        args=(f"{moto_url}/primary", f"{moto_url}/replica", wire),
        kwargs={"transform": spec.to_params()},
    )


def _put(moto_url: str, key: str, **extra: Any) -> None:
    item = {"id": {"S": key}, "kind": {"S": "public"}, "ssn": {"S": "1"}, "userId": {"S": "u"}}
    client(moto_url).put_item(TableName="primary", Item={**item, **extra})


def test_replication_writes_the_transformed_item_or_deletes_the_key(
    env: dict[str, str], moto_url: str, start_worker: Any
) -> None:
    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    _put(moto_url, "shown")
    _put(moto_url, "hidden", kind={"S": "internal"})
    _put(moto_url, "expired", expires={"N": str(int(time.time()) - 60)})
    _put(moto_url, "leaves")
    start_worker()
    _send(env, moto_url, ["shown", "hidden", "expired", "leaves"], SPEC)
    wait_until(lambda: len(normalized_table(moto_url, "replica")) == 2, 30, "two replicated")
    _put(moto_url, "leaves", kind={"S": "internal"})  # stops matching

    _send(env, moto_url, ["leaves"], SPEC)

    wait_until(lambda: len(normalized_table(moto_url, "replica")) == 1, 30, "leaves deleted")
    (only,) = scan_all(moto_url, "replica").values()
    assert only == {"id": {"S": "shown"}, "kind": {"S": "PUBLIC"}, "user_id": {"S": "u"}}


def test_a_key_change_or_an_unloadable_transform_is_dead_lettered(
    env: dict[str, str], moto_url: str, start_worker: Any
) -> None:
    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    _put(moto_url, "a")
    _put(moto_url, "b")
    start_worker()

    _send(env, moto_url, ["a"], TransformSpec(callable="tests.unit.test_transform:rekey"))
    _send(env, moto_url, ["b"], TransformSpec(callable="not_installed_here:f"))

    wait_until(lambda: len(deadletters.entries(connection())) == 2, 60, "two dead letters")
    reasons = sorted(entry.reason for _, entry in deadletters.entries(connection()))
    assert any("changed the key attributes" in r for r in reasons)
    assert any("does not load" in r for r in reasons)
    assert normalized_table(moto_url, "replica") == {}
