"""A worker process builds its clients and reads its tables' descriptions when it starts, not in
its first task.

The tables are reached through the fault proxy, which counts DescribeTable requests: a worker
started after replication has used the tables describes them before any message is sent, and
its tasks then describe nothing.
"""

from __future__ import annotations

from typing import Any

from tests.support.faultproxy import FaultProxy
from tests.support.servers import Worker, wait_until
from tests.support.tables import client, create_table


def _send(primary: str, replica: str, keys: list[dict[str, Any]]) -> None:
    from worker.app import app

    app.send_task("replicate", args=(primary, replica, keys))


def _ready(worker: Worker) -> list[str]:
    return [line for line in worker.output().splitlines() if "worker process ready" in line]


def _replicated(worker: Worker) -> int:
    return worker.output().count('"event": "replicate"')


def test_a_new_worker_process_is_ready_for_the_tables_before_its_first_task(
    env: dict[str, str], moto_url: str, fault_proxy: FaultProxy, start_worker: Any
) -> None:
    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    ddb = client(moto_url)
    for i in range(8):
        ddb.put_item(TableName="primary", Item={"id": {"S": f"k{i}"}, "v": {"N": str(i)}})
    primary, replica = f"{fault_proxy.url}/primary", f"{fault_proxy.url}/replica"

    first = start_worker(concurrency=1)
    _send(primary, replica, [{"id": {"S": "k0"}}])  # replication uses the tables once
    wait_until(lambda: _replicated(first) == 1, 30, "the first task")
    first.stop()

    fault_proxy.reset_counts()
    second = start_worker(concurrency=2)
    wait_until(lambda: len(_ready(second)) == 2, 30, "both pool processes ready")
    assert all("/primary" in line and "/replica" in line for line in _ready(second))
    assert fault_proxy.counts("DescribeTable").forwarded == 4  # 2 processes x 2 tables

    fault_proxy.reset_counts()
    for i in range(1, 8):
        _send(primary, replica, [{"id": {"S": f"k{i}"}}])
    wait_until(lambda: _replicated(second) == 7, 30, "seven tasks")
    assert fault_proxy.counts("DescribeTable").forwarded == 0  # no task described a table
    assert fault_proxy.counts("BatchGetItem").forwarded == 7
    assert ddb.scan(TableName="replica", Select="COUNT")["Count"] == 8
