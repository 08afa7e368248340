"""Each AWS service's endpoint from its own setting, through the real producer and workers.

The tables and the change stream may live on different endpoints: tables on dynalite and the
Kinesis stream on moto (``AWS_ENDPOINT_URL_KINESIS``), or the table's DynamoDB stream reached
through another address (``AWS_ENDPOINT_URL_DYNAMODB_STREAMS``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tests.support.faultproxy import FaultProxy
from tests.support.servers import Server, wait_until
from tests.support.tables import client, create_table
from tests.support.workload import kinesis_record


def _count(url: str, name: str) -> int:
    return int(client(url).scan(TableName=name, Select="COUNT", ConsistentRead=True)["Count"])


def _empty(dynalite: Server) -> str:
    ddb = client(dynalite.url)
    for name in ddb.list_tables()["TableNames"]:
        ddb.delete_table(TableName=name)
    return urlsplit(dynalite.url).netloc


def test_tables_on_dynalite_and_the_kinesis_stream_on_moto(
    env: dict[str, str],
    moto_url: str,
    dynalite_server: Server,
    start_worker: Any,
    start_producer: Any,
) -> None:
    host_port = _empty(dynalite_server)
    create_table(dynalite_server.url, "primary")
    create_table(dynalite_server.url, "replica")
    ddb, kinesis = client(dynalite_server.url), client(moto_url, "kinesis")
    kinesis.create_stream(StreamName="changes", ShardCount=1)
    for i in range(40):
        key = {"id": {"S": f"k{i}"}}
        ddb.put_item(TableName="primary", Item={**key, "v": {"N": str(i)}})
        kinesis.put_record(
            StreamName="changes", Data=kinesis_record(key, "INSERT"), PartitionKey=f"k{i}"
        )
    kinesis_env = {"AWS_ENDPOINT_URL_KINESIS": moto_url}
    start_worker(extra_env=kinesis_env)
    producer = start_producer(
        *("--primary", f"{host_port}/primary", "--replica", f"{host_port}/replica"),
        *("--kinesis-stream", "changes"),
        extra_env=kinesis_env,
    )

    wait_until(
        lambda: _count(dynalite_server.url, "replica") == 40 or producer.process.poll() is not None,
        60,
        "40 items on the replica",
    )
    assert producer.process.poll() is None, producer.output()  # it found the stream on moto
    assert _count(dynalite_server.url, "replica") == 40
    assert "primary" not in client(moto_url).list_tables()["TableNames"]  # tables: dynalite only


def test_the_dynamodb_stream_through_its_own_endpoint(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any
) -> None:
    create_table(moto_url, "primary", stream="KEYS_ONLY")
    create_table(moto_url, "replica")
    host_port = urlsplit(moto_url).netloc
    with FaultProxy(moto_url) as streams_endpoint:
        start_worker()
        start_producer(
            *("--primary", f"{host_port}/primary", "--replica", f"{host_port}/replica"),
            extra_env={"AWS_ENDPOINT_URL_DYNAMODB_STREAMS": streams_endpoint.url},
        )
        ddb = client(moto_url)
        for i in range(30):
            ddb.put_item(TableName="primary", Item={"id": {"S": f"k{i}"}, "v": {"N": str(i)}})

        wait_until(lambda: _count(moto_url, "replica") == 30, 60, "30 items on the replica")
        # The stream was read through its own endpoint; the tables were not.
        assert streams_endpoint.counts("GetRecords").forwarded > 0
        assert streams_endpoint.counts("DescribeStream").forwarded > 0
        assert streams_endpoint.counts("BatchGetItem").forwarded == 0
        assert streams_endpoint.counts("DescribeTable").forwarded == 0
