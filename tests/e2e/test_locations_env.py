"""Table locations take the process's environment, through the real commands.

``HOST:PORT/TABLE`` (and ``http://HOST:PORT/TABLE``) take their region from ``AWS_REGION``;
``local/TABLE`` takes the endpoint from ``AWS_ENDPOINT_URL_DYNAMODB``. A location crosses to a
worker with its region spelled out, so a worker whose own region differs still finds the table.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import boto3

from tests.e2e.test_record_commands import run
from tests.support.servers import wait_until

REGION = "eu-west-1"  # the tables exist only here; the fixtures' default region is us-east-1


def _client(moto_url: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _tables(moto_url: str, stream: bool = False) -> Any:
    ddb = _client(moto_url)
    extra: dict[str, Any] = {}
    if stream:
        extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    for name in ("primary", "replica"):
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            **(extra if name == "primary" else {}),
        )
    return ddb


def _in_region(env: dict[str, str]) -> dict[str, str]:
    return {**env, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}


def test_host_port_locations_take_aws_region(env: dict[str, str], moto_url: str) -> None:
    ddb = _tables(moto_url)
    ddb.put_item(TableName="primary", Item={"id": {"S": "a"}, "v": {"N": "1"}})
    host_port = urlsplit(moto_url).netloc

    for form in (f"{host_port}/", f"{moto_url}/"):
        done = run(_in_region(env), "diff-tables", f"{form}primary", f"{form}replica")
        assert done.returncode == 1, done.stderr  # found both tables, and the missing item
        assert '[missing] {"id":{"S":"a"}}' in done.stdout


def test_local_locations_take_the_dynamodb_endpoint(env: dict[str, str], moto_url: str) -> None:
    ddb = _tables(moto_url)
    ddb.put_item(TableName="primary", Item={"id": {"S": "a"}, "v": {"N": "1"}})
    local = {**_in_region(env), "AWS_ENDPOINT_URL_DYNAMODB": moto_url}

    copied = run(local, "replicate-record", "local/primary", "local/replica", '{"id":"a"}')
    assert copied.returncode == 0, copied.stderr
    assert copied.stdout.strip() == '[put] {"id":{"S":"a"}}'
    same = run(local, "diff-tables", "local/primary", "local/replica")
    assert same.returncode == 0, same.stderr
    assert "[discrepancies] 0" in same.stdout


def test_fanned_out_segments_reach_the_tables_whatever_the_workers_region(
    env: dict[str, str], moto_url: str, start_worker: Any
) -> None:
    ddb = _tables(moto_url)
    for i in range(20):
        ddb.put_item(TableName="primary", Item={"id": {"S": f"k{i}"}})
    start_worker()  # in us-east-1, where no such tables exist
    host_port = urlsplit(moto_url).netloc

    done = run(
        _in_region(env),
        "diff-tables",
        f"{host_port}/primary",
        f"{host_port}/replica",
        "--segments",
        "2",
        "--repair",
    )

    assert done.returncode == 0, done.stderr  # every missing item found and repaired
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["missing"] == 20 and summary["repaired"]["missing"] == 20
    assert summary["primary"] == f"http://{host_port}/primary"  # shown as people write it
    assert ddb.scan(TableName="replica", Select="COUNT")["Count"] == 20


def test_the_pipeline_replicates_endpoint_tables_in_another_region(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any
) -> None:
    ddb = _tables(moto_url, stream=True)
    host_port = urlsplit(moto_url).netloc
    start_worker()  # in us-east-1: the messages must carry the tables' region
    start_producer(
        "--primary",
        f"{host_port}/primary",
        "--replica",
        f"{host_port}/replica",
        extra_env={"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION},
    )
    for i in range(10):
        ddb.put_item(TableName="primary", Item={"id": {"S": f"k{i}"}, "v": {"N": str(i)}})

    def replicated() -> bool:
        return int(ddb.scan(TableName="replica", Select="COUNT")["Count"]) == 10

    wait_until(replicated, 60, "the replica in eu-west-1 to receive 10 items")
