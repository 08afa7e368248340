"""Messages of more than 100 keys: read 100 and written 25 at a time, a repeated key read once.

The tables are reached through the fault proxy, which counts the batch requests and the keys
and items in them.
"""

from __future__ import annotations

from typing import Any

from tasks.coord import stats
from tasks.coord.redis_conn import connection
from tests.support.faultproxy import FaultProxy
from tests.support.servers import Worker, wait_until
from tests.support.tables import client, create_table
from tests.support.workload import kinesis_record


def _tables(moto_url: str, items: int) -> Any:
    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    ddb = client(moto_url)
    for start in range(0, items, 25):
        requests = [
            {"PutRequest": {"Item": {"id": {"S": f"k{i}"}, "v": {"N": str(i)}}}}
            for i in range(start, min(items, start + 25))
        ]
        ddb.batch_write_item(RequestItems={"primary": requests})
    return ddb


def _summaries(worker: Worker) -> list[str]:
    return [line for line in worker.output().splitlines() if '"event": "replicate"' in line]


def test_a_message_above_100_keys_is_read_by_100_and_written_by_25(
    env: dict[str, str], moto_url: str, fault_proxy: FaultProxy, start_worker: Any
) -> None:
    from worker.app import app

    ddb = _tables(moto_url, 240)
    worker = start_worker(concurrency=1)
    keys = [{"id": {"S": f"k{i}"}} for i in range(240)] + [{"id": {"S": "k7"}}] * 60
    primary, replica = f"{fault_proxy.url}/primary", f"{fault_proxy.url}/replica"

    app.send_task("replicate", args=(primary, replica, keys))

    wait_until(lambda: len(_summaries(worker)) == 1, 60, "the task")
    assert fault_proxy.counts("BatchGetItem").forwarded == 3  # 100 + 100 + 40 keys
    assert fault_proxy.keys_count("BatchGetItem", "primary") == 240  # k7 read once
    assert fault_proxy.counts("BatchWriteItem").forwarded == 10  # 25 items a request
    assert fault_proxy.keys_count("BatchWriteItem", "replica") == 240
    assert ddb.scan(TableName="replica", Select="COUNT")["Count"] == 240
    assert stats.read(connection(), replica)["reads"] == 240


def test_a_page_with_a_hot_key_becomes_one_message_with_one_read_of_it(
    env: dict[str, str],
    moto_url: str,
    fault_proxy: FaultProxy,
    start_worker: Any,
    start_producer: Any,
) -> None:
    ddb = _tables(moto_url, 300)
    kinesis = client(moto_url, "kinesis")
    kinesis.create_stream(StreamName="changes", ShardCount=1)
    ids = [*range(300), *[42] * 100]  # 100 more changes of one hot key in the same page
    records = [
        {"Data": kinesis_record({"id": {"S": f"k{i}"}}, "MODIFY"), "PartitionKey": "p"} for i in ids
    ]
    kinesis.put_records(StreamName="changes", Records=records)
    worker = start_worker(concurrency=1)
    start_producer(
        *("--primary", f"{fault_proxy.url}/primary", "--replica", f"{fault_proxy.url}/replica"),
        *("--kinesis-stream", "changes"),
        extra_env={"REPLICATOR_KEYS_PER_MESSAGE": "500", "AWS_ENDPOINT_URL_KINESIS": moto_url},
    )

    wait_until(lambda: len(_summaries(worker)) == 1, 60, "one replicate task")
    (summary,) = _summaries(worker)
    assert '"keys": 300' in summary and '"puts": 300' in summary
    assert fault_proxy.keys_count("BatchGetItem", "primary") == 300
    assert ddb.scan(TableName="replica", Select="COUNT")["Count"] == 300
