"""The whole pipeline as a user runs it: producer and worker processes, moto over HTTP.

Every scenario ends the same way: when writes stop and the queues drain, the replica equals the
primary item for item.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tasks.coord import stats
from tasks.coord.redis_conn import connection
from tests.support.rabbitmq import BOTH_BROKERS
from tests.support.servers import wait_until
from tests.support.tables import client, create_table, normalized_table, stream_record_count
from tests.support.workload import apply_mixed

pytestmark = BOTH_BROKERS

SCHEMAS = {
    "composite": (("id", "S"), ("seq", "N")),
    "binary": (("id", "B"), None),
}


def make_tables(moto_url: str, schema: str, view: str) -> tuple[str, str]:
    hash_key, range_key = SCHEMAS[schema]
    create_table(moto_url, "primary", hash_key, range_key, stream=view)
    create_table(moto_url, "replica", hash_key, range_key)
    return f"{moto_url}/primary", f"{moto_url}/replica"


def assert_converges(moto_url: str, timeout: float = 90) -> None:
    def same() -> bool:
        return normalized_table(moto_url, "replica") == normalized_table(moto_url, "primary")

    try:
        wait_until(same, timeout, "replica to equal primary", interval=1.0)
    except TimeoutError:
        left, right = normalized_table(moto_url, "primary"), normalized_table(moto_url, "replica")
        wrong = sorted(k for k in left.keys() | right.keys() if left.get(k) != right.get(k))
        raise AssertionError(f"{len(wrong)} keys differ, e.g. {wrong[:3]}") from None


def final_status(output: str) -> dict[str, Any]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return next(line for line in reversed(lines) if line.get("event") == "producer stopped")


@pytest.mark.parametrize(
    ("schema", "view"), [("composite", "KEYS_ONLY"), ("binary", "NEW_AND_OLD_IMAGES")]
)
def test_two_thousand_mixed_changes_converge(
    env: dict[str, str],
    moto_url: str,
    start_worker: Any,
    start_producer: Any,
    schema: str,
    view: str,
) -> None:
    primary, replica = make_tables(moto_url, schema, view)
    start_worker(concurrency=2)
    producer = start_producer("--primary", primary, "--replica", replica)

    apply_mixed(client(moto_url), "primary", schema, ops=2000, n_keys=400, seed=7)

    assert_converges(moto_url)
    assert len(normalized_table(moto_url, "primary")) > 100
    assert producer.terminate() == 0, producer.output()
    status = final_status(producer.output())
    assert status["records_read"] == stream_record_count(moto_url, "primary") >= 2000
    assert status["records_malformed"] == 0
    counts = stats.read(connection(), replica)
    assert counts["reads"] >= counts["puts"] + counts["deletes"] > 0


def test_producer_restart_resumes_after_its_checkpoint(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any
) -> None:
    primary, replica = make_tables(moto_url, "composite", "KEYS_ONLY")
    start_worker(concurrency=2)
    first = start_producer("--primary", primary, "--replica", replica)
    ddb = client(moto_url)
    apply_mixed(ddb, "primary", "composite", ops=600, n_keys=200, seed=1)
    wait_until(
        lambda: "records_read" in first.output() and '"keys_enqueued": 0' not in first.output(),
        30,
        "first producer to read",
    )
    assert first.terminate() == 0, first.output()  # SIGTERM: finish the page, checkpoint, exit 0
    read_first = final_status(first.output())["records_read"]

    apply_mixed(ddb, "primary", "composite", ops=600, n_keys=200, seed=2)
    crashed = start_producer("--primary", primary, "--replica", replica)
    apply_mixed(ddb, "primary", "composite", ops=300, n_keys=200, seed=3)
    wait_until(lambda: "producer status" in crashed.output(), 30, "second producer")
    crashed.kill()  # SIGKILL: no goodbye, at-least-once from the last checkpoint

    last = start_producer("--primary", primary, "--replica", replica)
    # It takes the shard over once the killed producer's lease expires (10 s), from its checkpoint.
    wait_until(lambda: '"lease taken"' in last.output(), 60, "the last producer to take over")
    assert_converges(moto_url)
    assert last.terminate() == 0
    total = stream_record_count(moto_url, "primary")
    assert 0 < read_first < total
    # The last producer resumed after a checkpoint, so it did not re-read the whole stream.
    assert final_status(last.output())["records_read"] <= total - read_first


def test_duplicate_deliveries_and_replays_converge(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any
) -> None:
    primary, replica = make_tables(moto_url, "composite", "NEW_AND_OLD_IMAGES")
    start_worker(concurrency=2)
    ddb = client(moto_url)
    one = start_producer("--primary", primary, "--replica", replica, "--name", "one")
    two = start_producer("--primary", primary, "--replica", replica, "--name", "two")
    apply_mixed(ddb, "primary", "composite", ops=500, n_keys=150, seed=11)
    assert_converges(moto_url)
    # Replay the whole stream a third time while writes go on.
    three = start_producer("--primary", primary, "--replica", replica, "--name", "three")
    apply_mixed(ddb, "primary", "composite", ops=200, n_keys=150, seed=12)
    assert_converges(moto_url)
    for producer in (one, two, three):
        assert producer.terminate() == 0
    assert final_status(three.output())["records_read"] == stream_record_count(moto_url, "primary")


def _kinesis_stream(moto_url: str, shards: int) -> Any:
    kinesis = client(moto_url, "kinesis")
    kinesis.create_stream(StreamName="changes", ShardCount=shards)
    return kinesis


def _to_kinesis(kinesis: Any, keys_only_every: int = 0) -> Any:
    from tests.support.workload import kinesis_record

    count = {"n": 0}

    def on_change(key: dict[str, Any], event: str) -> None:
        count["n"] += 1
        keys_only = bool(keys_only_every) and count["n"] % keys_only_every == 0
        kinesis.put_record(
            StreamName="changes",
            Data=kinesis_record(key, event, keys_only),
            PartitionKey=key["id"]["B"].hex(),
        )

    return on_change


def test_kinesis_source_with_binary_keys_and_keys_only_records(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any
) -> None:
    primary, replica = make_tables(moto_url, "binary", "NEW_AND_OLD_IMAGES")
    kinesis = _kinesis_stream(moto_url, shards=2)
    kinesis.put_record(StreamName="changes", Data=b"not json", PartitionKey="bad")
    start_worker(concurrency=2)
    producer = start_producer(
        "--primary", primary, "--replica", replica, "--kinesis-stream", "changes"
    )

    apply_mixed(
        client(moto_url),
        "primary",
        "binary",
        ops=2000,
        n_keys=400,
        seed=5,
        on_change=_to_kinesis(kinesis, keys_only_every=3),
    )

    assert_converges(moto_url)
    assert producer.terminate() == 0
    status = final_status(producer.output())
    assert status["records_read"] == 2001 and status["records_malformed"] == 1


def test_kinesis_resharding_parents_before_children(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any
) -> None:
    primary, replica = make_tables(moto_url, "binary", "KEYS_ONLY")
    kinesis = _kinesis_stream(moto_url, shards=1)
    start_worker(concurrency=2)
    producer = start_producer(
        "--primary", primary, "--replica", replica, "--kinesis-stream", "changes"
    )
    ddb = client(moto_url)
    on_change = _to_kinesis(kinesis)
    apply_mixed(ddb, "primary", "binary", ops=300, n_keys=200, seed=21, on_change=on_change)
    kinesis.update_shard_count(
        StreamName="changes", TargetShardCount=2, ScalingType="UNIFORM_SCALING"
    )
    apply_mixed(ddb, "primary", "binary", ops=300, n_keys=200, seed=22, on_change=on_change)
    shards = kinesis.list_shards(StreamName="changes")["Shards"]
    splittable = [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    first = splittable[0]
    middle = (
        int(first["HashKeyRange"]["StartingHashKey"]) + int(first["HashKeyRange"]["EndingHashKey"])
    ) // 2
    kinesis.split_shard(
        StreamName="changes", ShardToSplit=first["ShardId"], NewStartingHashKey=str(middle)
    )
    apply_mixed(ddb, "primary", "binary", ops=300, n_keys=200, seed=23, on_change=on_change)

    assert_converges(moto_url)
    wait_until(lambda: producer.output().count('"shard finished"') >= 2, 30, "parents finished")
    assert producer.terminate() == 0
    events = [json.loads(line) for line in producer.output().splitlines() if line.startswith("{")]
    order = [
        (e["event"], e.get("shard"))
        for e in events
        if e["event"] in ("shard finished", "shard discovered")
    ]
    finished = [shard for event, shard in order if event == "shard finished"]
    listed = {s["ShardId"]: s for s in kinesis.list_shards(StreamName="changes")["Shards"]}
    for parent in finished:
        assert "EndingSequenceNumber" in listed[parent]["SequenceNumberRange"]
    assert len(listed) >= 4 and len(finished) >= 2


def test_a_burst_on_one_hot_key_costs_few_primary_reads(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any
) -> None:
    primary, replica = make_tables(moto_url, "composite", "KEYS_ONLY")
    start_worker(concurrency=2)
    start_producer("--primary", primary, "--replica", replica)
    ddb = client(moto_url)
    key = {"id": {"S": "hot"}, "seq": {"N": "1"}}

    for i in range(1000):
        ddb.put_item(TableName="primary", Item={**key, "v": {"N": str(i)}})

    assert_converges(moto_url)
    # At most one read per producer poll that found the key idle, whatever the write speed.
    reads = stats.read(connection(), replica)["reads"]
    assert 1 <= reads <= 1000 / 5, f"{reads} primary reads for 1000 changes"
