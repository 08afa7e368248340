"""A transform travels with its keys everywhere they go after the first message: a key sent
again after a failed write, and a dead-lettered key replayed, are written through it too (a
retry without it wrote the excluded attribute)."""

from __future__ import annotations

from typing import Any

from tasks.core.transform import TransformSpec
from tests.e2e.test_pipelines_cli import replicator
from tests.support.faultproxy import Rule
from tests.support.servers import wait_until
from tests.support.tables import client, create_table, scan_all

SHAPE = TransformSpec(exclude=("ssn",)).to_params()


def test_a_retried_and_a_replayed_key_keep_the_transform(
    env: dict[str, str], moto_url: str, fault_proxy: Any, start_worker: Any
) -> None:
    from worker.app import app

    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    ddb = client(moto_url)
    for i in range(10):
        ddb.put_item(TableName="primary", Item={"id": {"S": f"k{i}"}, "ssn": {"S": "123"}})
    start_worker(
        concurrency=1,
        extra_env={"REPLICATOR_AWS_MAX_ATTEMPTS": "1", "REPLICATOR_BATCH_MAX_ATTEMPTS": "3"},
    )
    primary = f"{fault_proxy.url}/primary"
    keys = [{"id": {"S": f"k{i}"}} for i in range(10)]

    # Failing writes: the keys are sent again on their own (a retry), then succeed.
    fault_proxy.add_rule(Rule("BatchWriteItem", action="error", table="replica", first=6))
    replica = f"{fault_proxy.url}/replica"
    app.send_task("replicate", args=(primary, replica, keys[:5]), kwargs={"transform": SHAPE})
    wait_until(lambda: len(scan_all(moto_url, "replica")) == 5, 60, "the retried keys")
    assert fault_proxy.counts("BatchWriteItem", "replica").injected == 6
    assert all("ssn" not in item for item in scan_all(moto_url, "replica").values())

    # A replica that does not exist yet: dead-lettered at once; replayed once it does.
    later = f"{moto_url}/later"
    app.send_task("replicate", args=(primary, later, keys[5:]), kwargs={"transform": SHAPE})
    wait_until(lambda: "[dead-letters] 5" in replicator(env, "dead-letters", "list").stdout, 60, "")
    create_table(moto_url, "later")
    replayed = replicator(env, "dead-letters", "replay")
    assert replayed.returncode == 0 and "[replayed] 5" in replayed.stdout, replayed.stderr
    wait_until(lambda: len(scan_all(moto_url, "later")) == 5, 60, "the replayed keys")
    assert all("ssn" not in item for item in scan_all(moto_url, "later").values())
