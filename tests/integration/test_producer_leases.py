"""Shard leases in a real Redis: the Lua scripts, fencing, and pollers sharing a DynamoDB stream
(the fake DynamoDB Streams client, whose shards split and close, read by pollers in threads)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from producer import status
from producer.checkpoints import Checkpoints
from producer.enqueue import Enqueuer, Target
from producer.filters import RecordFilter
from producer.leases import LeaseTable
from producer.metrics import ProducerCollector, view_of
from producer.poller import Poller, PollerOptions
from producer.sources import SHARD_END, Position
from producer.sources.dynamodb_streams import DynamoDBStreamsSource
from tasks.coord.redis_conn import connection
from tests.support.fake_streams import FakeStreams, RecordingApp
from tests.support.lease_audit import Read, reads_outside_tenure
from tests.support.servers import ROOT, wait_until
from tests.support.tables import table

PRIMARY = "http://127.0.0.1:1/primary"
REPLICA = "us-east-1/replica"


class Recorded:
    """The fake stream client as one poller sees it: every GetRecords is logged with its name."""

    def __init__(self, fake: FakeStreams, name: str, log: list[Read]) -> None:
        self._fake, self._name, self._log = fake, name, log

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._fake, attribute)

    def get_records(self, ShardIterator: str, Limit: int = 1000) -> dict[str, Any]:
        started = time.time()
        try:
            return self._fake.get_records(ShardIterator=ShardIterator, Limit=Limit)
        finally:
            shard = ShardIterator.split("|", maxsplit=1)[0]
            self._log.append(Read(shard, self._name, started, time.time()))


def make_poller(
    fake: FakeStreams, app: RecordingApp, name: str = "p", log: list[Read] | None = None
) -> Poller:
    client = Recorded(fake, name, log if log is not None else [])
    source = DynamoDBStreamsSource(table(PRIMARY), stream_arn=fake.arn, client=client)
    enqueuer = Enqueuer(app, connection(), PRIMARY, [Target("replicate", REPLICA, REPLICA)])
    options = PollerOptions(idle_sleep=0.05, discover_every=0.2, status_every=3600)
    return Poller(source, "c", enqueuer, RecordFilter(), options)


def start(poller: Poller) -> threading.Thread:
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    return thread


def stop(poller: Poller, thread: threading.Thread) -> None:
    poller.stop.set()
    thread.join(30)
    assert not thread.is_alive()


def history() -> list[dict[str, str]]:
    return LeaseTable(connection(), "c", "", 10).history()


def test_lease_scripts_fence_hand_over_and_expire(env: dict[str, str]) -> None:
    redis = connection()
    a, b, c = (LeaseTable(redis, "c", name, lease_seconds=1) for name in ("a", "b", "c"))
    checkpoints = Checkpoints(redis, "c")

    first = a.acquire("s")
    assert first is not None and b.acquire("s") is None
    token_a = first[0]
    assert checkpoints.save("s", "10", "a", token_a)
    assert not checkpoints.save("s", "11", "b", token_a)  # not b's lease
    assert not checkpoints.save("s", "11", "a", token_a + 1)  # not a's current token

    assert b.request("s", "a", token_a)
    assert a.renew({"s": token_a}) == {"s": 1}  # b is not a live producer: its wish is dropped
    assert b.renew({}) == {}  # b's heartbeat
    assert b.request("s", "a", token_a)
    assert a.renew({"s": token_a}) == {"s": 2}  # renewed, but b asked for it
    assert a.release("s", token_a)
    assert c.acquire("s") is None  # promised to b
    second = b.acquire("s")
    assert second is not None and second[0] > token_a and second[1] == "10"
    assert a.renew({"s": token_a}) == {"s": 0}
    assert not checkpoints.save("s", "5", "a", token_a)  # the old owner cannot move it back
    assert checkpoints.load()["s"] == "10"

    time.sleep(1.2)  # b stops renewing: its lease expires
    third = a.acquire("s")
    assert third is not None and third[0] > second[0]
    assert not checkpoints.save("s", "99", "b", second[0])
    assert checkpoints.finish("s", "a", third[0])
    assert a.acquire("s") is None  # a finished shard is never leased again
    events = [(e["event"], e["owner"]) for e in history()]
    assert events == [
        ("acquire", "a"),
        ("release", ""),
        ("acquire", "b"),
        ("takeover", "a"),
        ("finish", "a"),
    ]
    takeover = history()[3]
    assert takeover["previous"] == "b"
    assert float(takeover["at"]) >= int(takeover["previous_expires"])


def test_two_pollers_share_a_stream_one_reader_per_shard(env: dict[str, str]) -> None:
    fake, log = FakeStreams(), []
    apps = {"p1": RecordingApp(), "p2": RecordingApp()}
    for i in range(8):
        fake.add_shard(f"s{i}")
    pollers = {name: make_poller(fake, app, name, log) for name, app in apps.items()}
    threads = {name: start(p) for name, p in pollers.items()}
    wait_until(
        lambda: sorted(len(p.held()) for p in pollers.values()) == [4, 4], 30, "four shards each"
    )
    keys = [f"k{i}" for i in range(200)]
    for i, key in enumerate(keys):
        fake.put(f"s{i % 8}", key)

    def sent() -> set[str]:
        return {k for app in apps.values() for k in app.sent_keys()}

    wait_until(lambda: sent() == set(keys), 30, "every key sent")
    for name, poller in pollers.items():
        stop(poller, threads[name])

    owners = {name: p.owner for name, p in pollers.items()}
    assert reads_outside_tenure(log, history(), owners) == []
    assert {r.app for r in log} == {"p1", "p2"}
    assert all(p.stats.leases_lost == 0 for p in pollers.values())


def test_a_child_is_read_after_its_parent_whoever_read_the_parent(env: dict[str, str]) -> None:
    """p1 reads the parent to its end and stops; p2 continues with its children at once."""
    fake, log = FakeStreams(), []
    first, second = RecordingApp(), RecordingApp()
    fake.add_shard("a")
    fake.add_shard("x")
    for i in range(7):
        fake.put("a", f"a{i}")
        fake.put("x", f"x{i}")
    fake.close("a")
    p1 = make_poller(fake, first, "p1", log)
    thread = start(p1)
    wait_until(lambda: Checkpoints(connection(), "c").load().get("a") == SHARD_END, 30, "a read")
    wait_until(lambda: len(first.sent_keys()) == 14, 30, "x read")
    stop(p1, thread)  # releases x: another producer continues at once
    fake.add_shard("b", parent="a")  # the parent split: its children appear
    fake.add_shard("c", parent="a")
    for i in range(3):
        fake.put("b", f"b{i}")
        fake.put("c", f"c{i}")
        fake.put("x", f"y{i}")

    p2 = make_poller(fake, second, "p2", log)
    thread = start(p2)
    wait_until(lambda: len(second.sent_keys()) == 9, 30, "the children and x")
    stop(p2, thread)

    assert sorted(second.sent_keys()) == sorted(
        [f"b{i}" for i in range(3)] + [f"c{i}" for i in range(3)] + [f"y{i}" for i in range(3)]
    )  # p2 resumed after p1's checkpoints: nothing read twice
    events = history()
    finish = next(e for e in events if e["event"] == "finish" and e["shard"] == "a")
    assert finish["owner"] == p1.owner
    for child in ("b", "c"):
        reads = [r for r in log if r.shard == child]
        assert {r.app for r in reads} == {"p2"}
        assert min(r.started for r in reads) >= float(finish["at"]) / 1000
    taken = next(e for e in events if e["shard"] == "x" and e["owner"] == p2.owner)
    assert taken["event"] == "acquire" and taken["previous"] == ""  # released, not expired
    assert reads_outside_tenure(log, events, {"p1": p1.owner, "p2": p2.owner}) == []


def old_record(key: str, hours: float) -> dict[str, Any]:
    when = datetime.now(UTC) - timedelta(hours=hours)
    return {
        "eventName": "MODIFY",
        "dynamodb": {"Keys": {"id": {"S": key}}, "ApproximateCreationDateTime": when},
    }


def test_status_and_metrics_show_leases_ages_stalls_and_the_retention_warning(
    env: dict[str, str],
) -> None:
    fake, app = FakeStreams(), RecordingApp()
    fake.add_shard("behind")
    fake.add_shard("stuck")
    fake.add_shard("fresh")
    for i in range(300):  # read 3 a page, at most 5 pages a second: 20 s behind the tip
        fake.put("behind", f"late{i}", record=old_record(f"late{i}", hours=13))
    fake.put("fresh", "now")
    fake.put("stuck", "never")
    fake.failing_shards.add("stuck")
    poller = make_poller(fake, app)
    status.register(connection(), "c", fake.arn, [REPLICA], poller.source.retention_seconds, 10)
    thread = start(poller)
    wait_until(lambda: {"late0", "now"} <= set(app.sent_keys()), 30, "two shards read")
    wait_until(lambda: len(poller.held()) == 3, 30, "every shard leased")
    time.sleep(2)  # the stuck shard makes no progress; the lease keeper publishes the state
    assert "late299" not in app.sent_keys()  # still behind

    collector = ProducerCollector(lambda: [view_of(poller)])
    metrics = {
        (m.name, s.labels.get("shard") or s.labels.get("producer")): s.value
        for m in collector.collect()
        for s in m.samples
    }
    result = subprocess.run(
        [sys.executable, "-c", "from commands.replicator import main; main()", "status", REPLICA],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    stop(poller, thread)

    assert metrics["replicator_producer_leases", poller.owner] == 3
    assert metrics["replicator_producer_ready_shards", None] == 3
    assert metrics["replicator_producer_active_shards", None] == 3
    assert metrics["replicator_producer_iterator_age_seconds", "behind"] >= 13 * 3600
    assert 0.5 < metrics["replicator_producer_retention_used_ratio", "behind"] < 0.6
    assert metrics["replicator_producer_iterator_age_seconds", "fresh"] < 60
    assert metrics["replicator_producer_checkpoint_stalled_seconds", "fresh"] < 1
    assert metrics["replicator_producer_checkpoint_stalled_seconds", "stuck"] >= 2
    assert result.returncode == 0, result.stderr
    streams = json.loads(result.stdout)["streams"]
    assert [s["name"] for s in streams] == ["c"] and streams[0]["producers"] == {poller.owner: 3}
    assert streams[0]["shards"]["behind"]["iterator_age_s"] >= 13 * 3600
    assert (
        "warning: stream" in result.stderr
        and "shard behind: the oldest unread record is 13h" in (result.stderr)
    )
    assert "diff-tables --repair" in result.stderr
    assert "shard fresh" not in result.stderr


def test_a_poller_starts_from_explicit_positions_and_stops_cleanly(env: dict[str, str]) -> None:
    """What another command (a migration) needs: its own start per shard, a clean stop."""
    fake, app = FakeStreams(), RecordingApp()
    fake.add_shard("s")
    fake.add_shard("t")
    captured = [fake.put("s", f"s{i}") for i in range(5)][2]  # a position taken earlier
    for i in range(3):
        fake.put("t", f"t{i}")
    source = DynamoDBStreamsSource(table(PRIMARY), stream_arn=fake.arn, client=fake)
    enqueuer = Enqueuer(app, connection(), PRIMARY, [Target("replicate", REPLICA, REPLICA)])
    options = PollerOptions(
        positions={"s": Position("AFTER_SEQUENCE_NUMBER", sequence=captured)},
        start=Position("LATEST"),
        idle_sleep=0.05,
        discover_every=0.2,
    )
    poller = Poller(source, "migration", enqueuer, RecordFilter(), options)
    thread = start(poller)
    wait_until(lambda: sorted(app.sent_keys()) == ["s3", "s4"], 30, "the records after it")
    fake.put("t", "t3")
    wait_until(lambda: "t3" in app.sent_keys(), 30, "a new record of t")
    stop(poller, thread)

    assert sorted(app.sent_keys()) == ["s3", "s4", "t3"]  # t started at LATEST
    events = LeaseTable(connection(), "migration", "", 10).history()
    assert sorted(e["shard"] for e in events if e["event"] == "release") == ["s", "t"]


def test_discovery_pages_through_the_shards_and_backs_off_when_throttled(
    env: dict[str, str],
) -> None:
    fake, app = FakeStreams(throttle_next_describes=2), RecordingApp()
    for i in range(5):  # the fake lists 2 shards a page: 3 pages
        fake.add_shard(f"s{i}")
        fake.put(f"s{i}", f"k{i}")
    poller = make_poller(fake, app)
    thread = start(poller)
    wait_until(lambda: len(app.sent_keys()) == 5, 30, "every shard read")
    stop(poller, thread)

    assert sorted(app.sent_keys()) == [f"k{i}" for i in range(5)]
    assert fake.throttle_next_describes == 0 and fake.describes >= 2 + 3
