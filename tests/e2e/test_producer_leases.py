"""Several `python -m producer` processes share one resharding Kinesis stream by shard leases.

Real processes, moto's Kinesis (16 shards, split and merged while the producers run) behind a
recording proxy, a real worker and Redis. Each producer runs with its own
``AWS_SDK_UA_APP_ID``, so the proxy knows who sent each GetRecords; the leases' history in Redis
says who held each shard when. Every key is written once, so a replica equal to the primary
means every record was enqueued.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

from producer.leases import LeaseTable
from tasks.coord.redis_conn import connection
from tasks.core.config import settings
from tests.support.faultproxy import Rule
from tests.support.lease_audit import kinesis_reads, kinesis_shard, reads_outside_tenure
from tests.support.servers import Command, wait_until
from tests.support.tables import client, create_table, normalized_table
from tests.support.workload import kinesis_record

NAME = "leased"
SHARDS = 16
LEASE_SECONDS = 10  # the shipped default


def setup_stream(moto_url: str) -> Any:
    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    kinesis = client(moto_url, "kinesis")
    kinesis.create_stream(StreamName="changes", ShardCount=SHARDS)
    return kinesis


def write(moto_url: str, kinesis: Any, keys: range, hash_key: int | None = None) -> int:
    """Put one item per key and send its change record; the last record's sequence number."""
    ddb = client(moto_url)
    sequence = 0
    for i in keys:
        key = {"id": {"S": f"k{i:05d}"}}
        ddb.put_item(TableName="primary", Item={**key, "v": {"N": str(i)}})
        extra = {"ExplicitHashKey": str(hash_key)} if hash_key is not None else {}
        sequence = int(
            kinesis.put_record(
                StreamName="changes",
                Data=kinesis_record(key, "INSERT"),
                PartitionKey=f"k{i:05d}",
                **extra,
            )["SequenceNumber"]
        )
    return sequence


def start_producers(start_producer: Any, proxy_url: str, moto_url: str, n: int) -> list[Command]:
    return [
        start_producer(
            "--primary",
            f"{proxy_url}/primary",
            "--replica",
            f"{moto_url}/replica",
            "--kinesis-stream",
            "changes",
            "--name",
            NAME,
            extra_env={"AWS_SDK_UA_APP_ID": f"p{i}"},
        )
        for i in range(n)
    ]


def leases_by_owner() -> dict[str, int]:
    snap = LeaseTable(connection(), NAME, "", LEASE_SECONDS).snapshot()
    counts: dict[str, int] = {}
    for record in snap.leases.values():
        if record.held(snap.now_ms):
            counts[record.owner] = counts.get(record.owner, 0) + 1
    return counts


def owner_of(command: Command) -> str:
    """The producer id (host:pid:random) of a producer process, from the leases' history."""
    pid = f":{command.process.pid}:"
    return next(e["owner"] for e in history() if pid in e["owner"])


def history() -> list[dict[str, str]]:
    return LeaseTable(connection(), NAME, "", LEASE_SECONDS).history()


def assert_converges(moto_url: str, count: int, timeout: float = 180) -> None:
    def same() -> bool:
        replica = normalized_table(moto_url, "replica")
        return len(replica) == count and replica == normalized_table(moto_url, "primary")

    wait_until(same, timeout, "replica to equal primary", interval=1.0)


def final_status(output: str) -> dict[str, Any]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return next(line for line in reversed(lines) if line.get("event") == "producer stopped")


def open_shards(kinesis: Any) -> list[dict[str, Any]]:
    shards = kinesis.list_shards(StreamName="changes")["Shards"]
    found = [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    return sorted(found, key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))


def test_three_producers_share_a_resharding_stream(
    env: dict[str, str], moto_url: str, fault_proxy: Any, start_worker: Any, start_producer: Any
) -> None:
    kinesis = setup_stream(moto_url)
    start_worker(concurrency=2)
    producers = start_producers(start_producer, fault_proxy.url, moto_url, 3)
    wait_until(lambda: len(leases_by_owner()) == 3, 60, "three producers holding leases")
    wait_until(lambda: sorted(leases_by_owner().values()) == [5, 5, 6], 60, "a fair share each")
    write(moto_url, kinesis, range(0, 300))

    # Split a shard, then merge two neighbours held by different producers, while they read.
    first = open_shards(kinesis)[0]
    low, high = (
        int(first["HashKeyRange"]["StartingHashKey"]),
        int(first["HashKeyRange"]["EndingHashKey"]),
    )
    kinesis.split_shard(
        StreamName="changes",
        ShardToSplit=first["ShardId"],
        NewStartingHashKey=str((low + high) // 2),
    )
    write(moto_url, kinesis, range(300, 600))
    owners = {shard: record["owner"] for shard, record in lease_records().items()}
    pairs = list(zip(open_shards(kinesis), open_shards(kinesis)[1:], strict=False))
    # Two neighbours whose leases two different producers hold now (the split's children may
    # have no lease yet): the merged child then has a parent read by another producer than its
    # own reader, whoever that is.
    left, right = next(
        (a, b)
        for a, b in pairs
        if None not in (owners.get(a["ShardId"]), owners.get(b["ShardId"]))
        and owners[a["ShardId"]] != owners[b["ShardId"]]
    )
    kinesis.merge_shards(
        StreamName="changes",
        ShardToMerge=left["ShardId"],
        AdjacentShardToMerge=right["ShardId"],
    )
    write(moto_url, kinesis, range(600, 900))

    assert_converges(moto_url, 900)
    listed = {s["ShardId"]: s for s in kinesis.list_shards(StreamName="changes")["Shards"]}
    children = {
        shard_id: [p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p]
        for shard_id, s in listed.items()
        if s.get("ParentShardId")
    }
    assert len(children) == 3 and len(listed) == SHARDS + 3
    wait_until(
        lambda: all(
            any(e["event"] == "finish" and e["shard"] == p for e in history())
            for parents in children.values()
            for p in parents
        ),
        60,
        "every parent finished",
    )
    statuses = []
    for producer in producers:
        assert producer.terminate() == 0, producer.output()
        statuses.append(final_status(producer.output()))

    events = history()
    owner_of_app = {f"p{i}": owner_of(p) for i, p in enumerate(producers)}
    reads = kinesis_reads(fault_proxy.calls("GetRecords"))
    assert {r.app for r in reads} == set(owner_of_app)
    # No shard was read by a producer that did not hold its lease: one reader at a time.
    assert reads_outside_tenure(reads, events, owner_of_app) == []
    # Parents are read to their end (and their end checkpointed) before a child is read.
    crossed = 0
    for child, parents in children.items():
        first_child_read = min(r.started for r in reads if r.shard == child)
        for parent in parents:
            parent_reads = [r for r in reads if r.shard == parent]
            finished = next(
                float(e["at"]) / 1000
                for e in events
                if e["event"] == "finish" and e["shard"] == parent
            )
            assert max(r.ended for r in parent_reads) <= finished <= first_child_read
            crossed += {r.app for r in parent_reads} != {r.app for r in reads if r.shard == child}
    assert crossed >= 1, "no parent and child were read by different producers"
    assert sum(s["keys_enqueued"] for s in statuses) >= 900
    assert all(s["leases_lost"] == 0 and s["checkpoints_refused"] == 0 for s in statuses)


def test_killed_and_frozen_producers_are_taken_over_and_a_stale_owner_is_fenced(
    env: dict[str, str], moto_url: str, fault_proxy: Any, start_worker: Any, start_producer: Any
) -> None:
    kinesis = setup_stream(moto_url)
    start_worker(concurrency=2)
    killed, frozen, survivor = start_producers(start_producer, fault_proxy.url, moto_url, 3)
    wait_until(lambda: sorted(leases_by_owner().values()) == [5, 5, 6], 90, "a fair share each")
    write(moto_url, kinesis, range(0, 300))
    frozen_id, killed_id, survivor_id = owner_of(frozen), owner_of(killed), owner_of(survivor)

    # Freeze p1 while its GetRecords is in flight; the page it gets holds fresh records.
    hold = fault_proxy.add_rule(Rule("GetRecords", action="hold", app="p1", first=1))
    hold.wait_held(1, 30)
    os.kill(frozen.process.pid, signal.SIGSTOP)
    held_shard = kinesis_shard(hold.held_calls[0]["ShardIterator"])
    target = next(s for s in open_shards(kinesis) if s["ShardId"] == held_shard)
    inside = int(target["HashKeyRange"]["StartingHashKey"])
    write(moto_url, kinesis, range(300, 310), hash_key=inside)
    fault_proxy.remove_rule(hold)  # the answer waits in the frozen process's socket
    os.kill(killed.process.pid, signal.SIGKILL)
    lost = {s for s, r in lease_records().items() if r["owner"] in (frozen_id, killed_id)}
    write(moto_url, kinesis, range(310, 600))
    last = write(moto_url, kinesis, range(600, 620), hash_key=inside)

    wait_until(lambda: leases_by_owner() == {survivor_id: SHARDS}, 60, "the survivor took all")
    wait_until(
        lambda: int(checkpoint(held_shard) or 0) >= last,
        60,
        "the survivor to read past the frozen page",
    )
    events = history()
    takeovers = [e for e in events if e["event"] == "takeover" and e["shard"] in lost]
    assert {e["shard"] for e in takeovers} == lost
    for event in takeovers:
        late_ms = float(event["at"]) - int(event["previous_expires"])
        # Taken over after the lease expired, and within a lease tick or so of it.
        assert 0 <= late_ms <= 5000, event
    before = int(checkpoint(held_shard) or 0)

    os.kill(frozen.process.pid, signal.SIGCONT)
    wait_until(lambda: "checkpoint refused" in frozen.output(), 60, "the stale owner's write")
    assert int(checkpoint(held_shard) or 0) >= before
    refused = [
        json.loads(line)
        for line in frozen.output().splitlines()
        if line.startswith("{") and "checkpoint refused" in line
    ]
    assert any(r["shard"] == held_shard for r in refused)

    write(moto_url, kinesis, range(620, 900))
    assert_converges(moto_url, 900)
    for producer in (frozen, survivor):
        assert producer.terminate() == 0, producer.output()
    assert final_status(frozen.output())["checkpoints_refused"] >= 1
    reads = kinesis_reads(fault_proxy.calls("GetRecords"))
    owner_of_app = {"p0": killed_id, "p1": frozen_id, "p2": survivor_id}
    stale = reads_outside_tenure(reads, history(), owner_of_app)
    # Only the frozen producer's read in flight (answered while it was frozen) may fall outside.
    assert all(r.app == "p1" and r.shard == held_shard for r in stale), stale


def lease_records() -> dict[str, dict[str, Any]]:
    raw = connection().hgetall(settings().key("lease", NAME))
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def checkpoint(shard: str) -> str | None:
    value = connection().hget(settings().key("checkpoint", NAME), shard)
    return value.decode() if value else None
