"""Two `python -m producer --config FILE` processes and one worker pool serve a fleet.

Three pipelines (two DynamoDB Streams tables, one Kinesis stream that is split while it is
read); one producer is SIGKILLed mid-stream; a fourth pipeline is added to the file and one is
removed, picked up on SIGHUP without a restart. Every remaining replica converges; no shard was
read by a producer that did not hold its lease (GetRecords seen by a recording proxy, each
producer with its own ``AWS_SDK_UA_APP_ID``); `replicator status` lists each pipeline.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from producer.leases import LeaseTable
from tasks.coord.redis_conn import connection, text
from tasks.core.config import settings
from tests.support.lease_audit import Read, kinesis_reads, reads_outside_tenure
from tests.support.servers import ROOT, Command, wait_until
from tests.support.tables import client, create_table, normalized_table
from tests.support.workload import kinesis_record

LEASE_SECONDS = 10  # the shipped default
STREAM_TABLES = ("orders", "carts", "late")


def pipeline(name: str, primary: str, replica: str, extra: str = "") -> str:
    return f"""
[[pipeline]]
name = "{name}"
primary = "{primary}"
replica = "{replica}"
{extra}"""


def fleet_file(proxy: str, moto: str, names: tuple[str, ...]) -> str:
    known = {
        "orders": pipeline("orders", f"{proxy}/orders", f"{moto}/orders-copy"),
        "carts": pipeline("carts", f"{proxy}/carts", f"{moto}/carts-copy"),
        "events": pipeline(
            "events", f"{proxy}/events", f"{moto}/events-copy", 'kinesis_stream = "events"\n'
        ),
        "late": pipeline("late", f"{proxy}/late", f"{moto}/late-copy"),
    }
    return "".join(known[n] for n in names)


def write_items(moto: str, table: str, keys: range) -> None:
    ddb = client(moto)
    for i in keys:
        ddb.put_item(TableName=table, Item={"id": {"S": f"k{i:04d}"}, "v": {"N": str(i)}})


def write_events(moto: str, keys: range) -> None:
    """Items of the Kinesis pipeline's primary, and their change records on its stream."""
    write_items(moto, "events", keys)
    kinesis = client(moto, "kinesis")
    for i in keys:
        key = {"id": {"S": f"k{i:04d}"}}
        kinesis.put_record(
            StreamName="events", Data=kinesis_record(key, "INSERT"), PartitionKey=f"k{i:04d}"
        )


def consumers() -> dict[str, str]:
    """Pipeline name -> its checkpoint name, as the producers registered them."""
    raw = connection().hgetall(settings().key("consumers"))
    return {json.loads(v)["pipeline"]: text(k) for k, v in raw.items()}


def leases(consumer: str) -> LeaseTable:
    return LeaseTable(connection(), consumer, "", LEASE_SECONDS)


def held(consumer: str) -> dict[str, str]:
    snap = leases(consumer).snapshot()
    return {s: r.owner for s, r in snap.leases.items() if r.held(snap.now_ms)}


def converged(moto: str, table: str, count: int) -> bool:
    copy = normalized_table(moto, f"{table}-copy")
    return len(copy) == count and copy == normalized_table(moto, table)


def replicator(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from commands.replicator import main; main()", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def stream_reads(calls: list[Any]) -> list[Read]:
    """DynamoDB Streams reads: moto's iterators name the table (its stream has one shard)."""
    return [
        Read(c.document["ShardIterator"].split("/")[1], c.app or "", c.started, c.ended)
        for c in calls
        if c.operation == "GetRecords" and c.document and c.status == 200
    ]


def owner_of(command: Command, consumer: str) -> str:
    pid = f":{command.process.pid}:"
    return next(e["owner"] for e in leases(consumer).history() if pid in e["owner"])


def test_two_producers_serve_a_changing_fleet(
    env: dict[str, str],
    moto_url: str,
    fault_proxy: Any,
    start_worker: Any,
    start_producer: Any,
    tmp_path: Path,
) -> None:
    for name in STREAM_TABLES:
        create_table(moto_url, name, stream="NEW_AND_OLD_IMAGES")
    for name in ("events", *(f"{n}-copy" for n in (*STREAM_TABLES, "events"))):
        create_table(moto_url, name)
    kinesis = client(moto_url, "kinesis")
    kinesis.create_stream(StreamName="events", ShardCount=2)
    path = tmp_path / "fleet.toml"
    path.write_text(fleet_file(fault_proxy.url, moto_url, ("orders", "carts", "events")))

    start_worker(concurrency=2)  # one pool for every pipeline: nothing per table
    producers = [
        start_producer("--config", str(path), extra_env={"AWS_SDK_UA_APP_ID": f"p{i}"})
        for i in range(2)
    ]
    wait_until(lambda: len(consumers()) == 3, 60, "three pipelines registered")
    names = consumers()
    wait_until(
        lambda: len({o for c in names.values() for o in held(c).values()}) == 2,
        90,
        "both producers holding leases",
    )
    write_items(moto_url, "orders", range(0, 100))
    write_items(moto_url, "carts", range(0, 100))
    write_events(moto_url, range(0, 100))

    # Split a Kinesis shard while it is read, then kill one producer mid-stream.
    shard = kinesis.list_shards(StreamName="events")["Shards"][0]
    low = int(shard["HashKeyRange"]["StartingHashKey"])
    high = int(shard["HashKeyRange"]["EndingHashKey"])
    kinesis.split_shard(
        StreamName="events",
        ShardToSplit=shard["ShardId"],
        NewStartingHashKey=str((low + high) // 2),
    )
    write_events(moto_url, range(100, 200))
    killed, survivor = producers
    killed_ids = {c: owner_of(killed, c) for c in names.values() if _ran(killed, c)}
    killed.process.send_signal(signal.SIGKILL)
    write_items(moto_url, "orders", range(100, 200))
    write_items(moto_url, "carts", range(100, 150))
    write_events(moto_url, range(200, 300))
    wait_until(lambda: converged(moto_url, "carts", 150), 180, "carts to converge", interval=1.0)

    # A fourth pipeline added, one removed: picked up on SIGHUP by the running producer.
    path.write_text(fleet_file(fault_proxy.url, moto_url, ("orders", "events", "late")))
    survivor.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "late" in consumers(), 60, "the added pipeline registered")
    wait_until(lambda: held(names["carts"]) == {}, 60, "the removed pipeline's leases released")
    carts_checkpoints = connection().hgetall(settings().key("checkpoint", names["carts"]))
    write_items(moto_url, "late", range(0, 50))
    write_items(moto_url, "orders", range(200, 250))
    write_events(moto_url, range(300, 350))

    for table, count in (("orders", 250), ("events", 350), ("late", 50)):
        wait_until(
            lambda t=table, n=count: converged(moto_url, t, n),  # type: ignore[misc]
            180,
            f"{table} to converge",
            interval=1.0,
        )
    write_items(moto_url, "carts", range(150, 160))  # after its removal: nobody reads them
    result = replicator(env, "status", "--config", str(path), "--json")
    rows = {r["pipeline"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert survivor.terminate() == 0, survivor.output()

    assert "Traceback" not in survivor.output()
    assert result.returncode == 0, result.stderr
    assert set(rows) == {"orders", "events", "late"}
    assert all(row["producers"] == 1 and row["shards"] >= 1 for row in rows.values()), rows
    assert rows["late"]["targets"] == [f"{moto_url}/late-copy"]
    assert len(normalized_table(moto_url, "carts-copy")) == 150
    assert carts_checkpoints  # the removed pipeline keeps its checkpoints
    assert connection().hgetall(settings().key("checkpoint", names["carts"])) == carts_checkpoints

    # No shard of any pipeline was read by a producer that did not hold its lease then.
    calls = fault_proxy.calls("GetRecords")
    by_table = {
        "orders": names["orders"],
        "carts": names["carts"],
        "late": consumers()["late"],
    }
    all_reads = stream_reads([c for c in calls if "arn:aws:dynamodb" in str(c.document)])
    for table, consumer in by_table.items():
        history = leases(consumer).history()
        (shard_id,) = {e["shard"] for e in history}
        reads = [Read(shard_id, r.app, r.started, r.ended) for r in all_reads if r.shard == table]
        assert reads, table
        apps = _owners(killed, survivor)
        assert reads_outside_tenure(reads, history, apps) == [], table
    events_reads = kinesis_reads([c for c in calls if "arn:aws:dynamodb" not in str(c.document)])
    children = {
        s["ShardId"]
        for s in kinesis.list_shards(StreamName="events")["Shards"]
        if s.get("ParentShardId") == shard["ShardId"]
    }
    assert len(children) == 2 and children <= {r.shard for r in events_reads}
    events_history = leases(names["events"]).history()
    outside = reads_outside_tenure(events_reads, events_history, _owners(killed, survivor))
    assert outside == []
    assert killed_ids  # the killed producer held leases when it died: they were taken over
    takeovers = [
        e
        for c in killed_ids
        for e in leases(c).history()
        if e["event"] == "takeover" and e["previous"] == killed_ids[c]
    ]
    assert takeovers


def _ran(command: Command, consumer: str) -> bool:
    pid = f":{command.process.pid}:"
    return any(pid in e["owner"] for e in leases(consumer).history())


def _owners(killed: Command, survivor: Command) -> dict[str, str]:
    """The proxy's app names (p0, p1) -> the producer ids (one per process, for every pipeline)."""
    events = [e for c in consumers().values() for e in leases(c).history()]
    found = {}
    for app, command in (("p0", killed), ("p1", survivor)):
        pid = f":{command.process.pid}:"
        found[app] = next(e["owner"] for e in events if pid in e["owner"])
    return found


def test_a_changed_pipeline_restarts_and_a_bad_reload_changes_nothing(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any, tmp_path: Path
) -> None:
    create_table(moto_url, "orders", stream="NEW_AND_OLD_IMAGES")
    create_table(moto_url, "orders-copy")
    path = tmp_path / "fleet.toml"
    path.write_text(fleet_file(moto_url, moto_url, ("orders",)))
    start_worker(concurrency=2)
    producer = start_producer("--config", str(path))
    wait_until(lambda: "orders" in consumers(), 60, "the pipeline registered")
    consumer = consumers()["orders"]
    write_items(moto_url, "orders", range(0, 50))
    wait_until(lambda: converged(moto_url, "orders", 50), 120, "orders", interval=1.0)

    path.write_text(fleet_file(moto_url, moto_url, ("orders",)) + "colour = 'blue'\n")
    producer.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "pipelines not reloaded" in producer.output(), 60, "the bad file refused")
    assert "unknown key 'colour'" in producer.output()
    assert "pipeline stopped" not in producer.output()

    path.write_text(fleet_file(moto_url, moto_url, ("orders",)) + "page_limit = 10\n")
    producer.process.send_signal(signal.SIGHUP)
    wait_until(
        lambda: [e["reason"] for e in logged(producer, "pipeline stopped")] == ["changed"],
        60,
        "the changed pipeline stopped",
    )
    write_items(moto_url, "orders", range(50, 120))
    wait_until(lambda: converged(moto_url, "orders", 120), 120, "orders again", interval=1.0)
    shown = replicator(env, "status")  # every pipeline that registered, as a table
    assert producer.terminate() == 0, producer.output()
    header, row = shown.stdout.splitlines()
    assert header.split()[:4] == ["pipeline", "transform", "producers", "shards"]
    assert row.split()[:4] == ["orders", "-", "1", "1"], shown.stdout + shown.stderr

    events = [(e["event"], e["owner"]) for e in leases(consumer).history()]
    owner = events[0][1]
    # Released by the pipeline that stopped, then taken by the one that started: never two.
    assert events[:3] == [("acquire", owner), ("release", ""), ("acquire", owner)], events
    assert len(logged(producer, "pipeline started")) == 2


def logged(command: Command, event: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in command.output().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]
