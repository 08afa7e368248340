"""The replicate task in real Celery worker processes."""

from __future__ import annotations

import json
from typing import Any

from tasks.coord import deadletters
from tasks.coord.redis_conn import connection
from tests.support.servers import wait_until
from tests.support.tables import client, create_table, normalized_table


def _send(env: dict[str, str], primary: str, replica: str, keys: list[dict[str, Any]]) -> None:
    from worker.app import app

    app.conf.broker_url = env["CELERY_BROKER_URL"]
    app.send_task("replicate", args=(primary, replica, keys))


def test_worker_replicates_a_batch(env: dict[str, str], moto_url: str, start_worker: Any) -> None:
    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    ddb = client(moto_url)
    for i in range(50):
        ddb.put_item(TableName="primary", Item={"id": {"S": f"k{i}"}, "v": {"N": str(i)}})
    start_worker()
    keys = [{"id": {"S": f"k{i}"}} for i in range(60)]

    _send(env, f"{moto_url}/primary", f"{moto_url}/replica", keys)

    wait_until(lambda: len(normalized_table(moto_url, "replica")) == 50, 30, "replica filled")
    assert normalized_table(moto_url, "replica") == normalized_table(moto_url, "primary")


def test_permanent_failure_is_dead_lettered_with_reason(
    env: dict[str, str], moto_url: str, start_worker: Any
) -> None:
    create_table(moto_url, "primary")
    start_worker()

    _send(env, f"{moto_url}/primary", f"{moto_url}/missing-replica", [{"id": {"S": "a"}}])

    wait_until(lambda: bool(deadletters.entries(connection())), 30, "a dead letter")
    ((_, entry),) = deadletters.entries(connection())
    assert entry.key == {"id": {"S": "a"}}
    assert "missing-replica" in entry.reason and "does not exist" in entry.reason
    assert json.loads(entry.to_json())["kind"] == "replicate"
