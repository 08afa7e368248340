"""`replicator migrate` as a user runs it: the real command, real workers, moto over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import servers
from tests.support.migration import (
    REPLICATOR,
    Writers,
    backfilled_so_far,
    churn,
    load,
    migrate,
    migration_record,
    producers_watched,
    ready_line,
)
from tests.support.tables import client, create_table, normalized_table, scan_all


def source_with_indexes(moto_url: str) -> None:
    ddb = client(moto_url)
    ddb.create_table(
        TableName="source",
        KeySchema=[
            {"AttributeName": "id", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            {"AttributeName": "email", "AttributeType": "S"},
            {"AttributeName": "when", "AttributeType": "N"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-email",
                "KeySchema": [{"AttributeName": "email", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
                "ProvisionedThroughput": {"ReadCapacityUnits": 50, "WriteCapacityUnits": 40},
            }
        ],
        LocalSecondaryIndexes=[
            {
                "IndexName": "by-when",
                "KeySchema": [
                    {"AttributeName": "id", "KeyType": "HASH"},
                    {"AttributeName": "when", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["email"]},
            }
        ],
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 100, "WriteCapacityUnits": 80},
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
        Tags=[{"Key": "team", "Value": "data"}],
    )
    ddb.update_time_to_live(
        TableName="source",
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"},
    )
    for i in range(120):
        ddb.put_item(
            TableName="source",
            Item={
                "id": {"S": f"u{i % 30}"},
                "sk": {"N": str(i)},
                "email": {"S": f"u{i}@example.com"},
                "when": {"N": str(1000 + i)},
            },
        )


def test_create_copies_the_definition_and_every_item(
    env: dict[str, str], moto_url: str, start_worker: Any, tmp_path: Path
) -> None:
    source_with_indexes(moto_url)
    start_worker(concurrency=2)

    command = migrate(
        env,
        tmp_path,
        f"{moto_url}/source",
        f"{moto_url}/target",
        "--create",
        "--with-stream",
        "--segments",
        "3",
        "--exit-when-ready",
        "--name",
        "copy",
    )

    assert command.process.wait(180) == 0, command.output()
    report = ready_line(command.output())
    assert report["items_copied"] == 120
    assert report["discrepancies_found"] == report["discrepancies_repaired"] == 0
    assert report["verified_segments"] == 100
    assert set(report["seconds"]) >= {"preflight", "create", "capture", "backfill", "verify"}
    assert normalized_table(moto_url, "target") == normalized_table(moto_url, "source")
    ddb = client(moto_url)
    target = ddb.describe_table(TableName="target")["Table"]
    assert target["ProvisionedThroughput"]["ReadCapacityUnits"] == 100
    assert target["ProvisionedThroughput"]["WriteCapacityUnits"] == 80
    (gsi,) = target["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "by-email"
    assert gsi["Projection"]["ProjectionType"] == "KEYS_ONLY"
    assert gsi["ProvisionedThroughput"]["ReadCapacityUnits"] == 50
    (lsi,) = target["LocalSecondaryIndexes"]
    assert (lsi["IndexName"], lsi["Projection"]["NonKeyAttributes"]) == ("by-when", ["email"])
    assert target["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    ttl = ddb.describe_time_to_live(TableName="target")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
    tags = ddb.list_tags_of_resource(ResourceArn=target["TableArn"])["Tags"]
    assert tags == [{"Key": "team", "Value": "data"}]


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("schema", [], "key schemas differ"),
        ("no-stream", [], "has no stream"),
        ("retention", ["--rate", "0.001"], "more than 12.0 h"),
        ("absent", [], "does not exist: create it, or pass --create"),
    ],
)
def test_preflight_refuses_with_one_line_and_creates_nothing(
    env: dict[str, str], moto_url: str, tmp_path: Path, setup: str, args: list[str], message: str
) -> None:
    create_table(moto_url, "source", stream=None if setup == "no-stream" else "KEYS_ONLY")
    load(moto_url, "source", 60)
    if setup == "schema":
        create_table(moto_url, "target", ("pk", "N"))
    extra = ["--create"] if setup in ("no-stream", "retention") else []

    command = migrate(
        env, tmp_path, f"{moto_url}/source", f"{moto_url}/target", *extra, *args, "--name", "x"
    )

    assert command.process.wait(60) == 2, command.output()
    output = command.output()
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in output, output
    tables = client(moto_url).list_tables()["TableNames"]
    assert sorted(tables) == (["source", "target"] if setup == "schema" else ["source"])


def test_status_and_stop_end_a_following_migration(
    env: dict[str, str], moto_url: str, start_worker: Any, tmp_path: Path
) -> None:
    create_table(moto_url, "source", stream="KEYS_ONLY")
    load(moto_url, "source", 50)
    start_worker(concurrency=2)
    command = migrate(
        env, tmp_path, f"{moto_url}/source", f"{moto_url}/target", "--create", "--name", "live"
    )
    servers.wait_until(lambda: '"phase": "ready"' in command.output(), 120, "ready")

    # Writes after ready keep flowing to TARGET while the command follows the stream.
    churn(moto_url, "source", ops=200, n_keys=80, seed=3)
    servers.wait_until(
        lambda: normalized_table(moto_url, "target") == normalized_table(moto_url, "source"),
        60,
        "target to follow source after ready",
    )
    status = servers.start_command(
        [REPLICATOR, "migrate", "status", "live", "--json"], env, tmp_path, "status"
    )
    assert status.process.wait(30) == 0
    record = json.loads(status.output().strip().splitlines()[-1])
    assert (record["phase"], record["state"]) == ("ready", "ready")
    assert record["counts"]["copied"] == 50

    assert "migrate:live" in producers_watched()  # the tail, as `replicator status` shows it

    stop = servers.start_command([REPLICATOR, "migrate", "stop", "live"], env, tmp_path, "stop")
    assert stop.process.wait(30) == 0, stop.output()
    assert command.process.wait(30) == 0, command.output()
    # The migration is over: `replicator status` no longer watches (and warns about) its tail.
    assert "migrate:live" not in producers_watched()


@pytest.mark.parametrize("writers", [True, False], ids=["with-writers", "quiet"])
def test_migration_survives_a_killed_worker_and_a_killed_command(
    env: dict[str, str],
    moto_url: str,
    start_worker: Any,
    tmp_path: Path,
    writers: bool,
) -> None:
    create_table(moto_url, "source", stream="KEYS_ONLY")
    create_table(moto_url, "target")
    static = 3000
    ddb = client(moto_url)
    for base in range(0, static, 25):
        ddb.batch_write_item(
            RequestItems={
                "source": [
                    {"PutRequest": {"Item": {"id": {"S": f"s{i:05d}"}, "v": {"N": str(i)}}}}
                    for i in range(base, base + 25)
                ]
            }
        )
    for i in range(3):  # only on TARGET: the verify must find and delete exactly these
        ddb.put_item(TableName="target", Item={"id": {"S": f"planted-{i}"}})
    doomed = start_worker(concurrency=2)
    start_worker(concurrency=2, queues="bulk")
    start_worker(concurrency=1, queues="replication")  # as docs/migration.md advises
    running = Writers(moto_url) if writers else None
    args = [f"{moto_url}/source", f"{moto_url}/target", "--segments", "6", "--rate", "300"]
    args += ["--name", "chaos"]

    first = migrate(env, tmp_path, *args)
    servers.wait_until(lambda: backfilled_so_far("chaos") >= 300, 120, "backfill progress")
    doomed.kill()  # SIGKILL, main process and pool, in the middle of its segments
    servers.wait_until(lambda: backfilled_so_far("chaos") >= 900, 120, "more backfill progress")
    first.process.kill()  # the command itself, mid-backfill
    first.process.wait(10)
    assert migration_record("chaos")["phase"] == "backfill"

    second = migrate(env, tmp_path, *args)
    servers.wait_until(lambda: '"phase": "ready"' in second.output(), 300, "ready")
    report = ready_line(second.output())
    if running is not None:
        running.finish()
        assert running.ops > 0
    servers.wait_until(  # the command still follows the stream after ready
        lambda: normalized_table(moto_url, "target") == normalized_table(moto_url, "source"),
        90,
        "target to equal source",
    )
    assert second.terminate() == 0, second.output()
    assert report["discrepancies_found"] == report["discrepancies_repaired"]
    # The planted keys are what the backfill missed; the writers' keys a live write explains.
    assert report["discrepancies_missed"] == 3, report
    assert report["discrepancies_found"] == 3 + report["discrepancies_live_writes"], report
    if writers:
        assert report["items_copied"] >= static
    else:  # nothing else changes: every count is exact, across the two runs
        assert report["items_copied"] == static
        assert report["discrepancies_found"] == 3
    assert report["dead_letters"] == 0


def test_turnover_at_forwards_only_changes_made_before_it(
    env: dict[str, str], moto_url: str, start_worker: Any, tmp_path: Path
) -> None:
    import time

    create_table(moto_url, "source", stream="KEYS_ONLY")
    load(moto_url, "source", 20)
    start_worker(concurrency=2)
    turnover = time.time() + 20
    command = migrate(
        env,
        tmp_path,
        f"{moto_url}/source",
        f"{moto_url}/target",
        "--create",
        "--turnover-at",
        str(int(turnover * 1000)),
        "--name",
        "turn",
    )
    servers.wait_until(lambda: '"phase": "ready"' in command.output(), 120, "ready")
    ddb = client(moto_url)
    ddb.put_item(TableName="source", Item={"id": {"S": "before"}})
    servers.wait_until(lambda: "before" in str(normalized_table(moto_url, "target")), 30, "before")
    time.sleep(max(0.0, turnover - time.time()) + 1)
    ddb.put_item(TableName="source", Item={"id": {"S": "after"}})
    ddb.put_item(TableName="source", Item={"id": {"S": "k00003"}, "v": {"N": "-1"}})
    time.sleep(10)  # the tail reads a page every 0.1 s: ample time to (wrongly) forward them

    target = normalized_table(moto_url, "target")
    assert '{"id":{"S":"after"}}' not in target
    assert scan_all(moto_url, "target")['{"id":{"S":"k00003"}}']["v"] == {"N": "3"}
    assert command.terminate() == 0, command.output()
