"""The producer's shard graph, checkpoints and stream-position recovery (real Redis, fake
DynamoDB Streams client whose shards split and close)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from producer.checkpoints import Checkpoints
from producer.enqueue import Enqueuer, Target
from producer.filters import RecordFilter
from producer.poller import Poller, PollerOptions
from producer.reader import TRIM_HORIZON
from producer.sources import SHARD_END, Position
from producer.sources.dynamodb_streams import DynamoDBStreamsSource
from tasks.coord.redis_conn import connection
from tasks.core.config import settings
from tests.support.fake_streams import FakeStreams, RecordingApp
from tests.support.servers import wait_until
from tests.support.tables import table

PRIMARY = "http://127.0.0.1:1/primary"


def make_poller(
    fake: FakeStreams,
    app: RecordingApp,
    consumer: str = "c",
    record_filter: RecordFilter | None = None,
    start: Position = TRIM_HORIZON,
) -> Poller:
    source = DynamoDBStreamsSource(table(PRIMARY), stream_arn=fake.arn, client=fake)
    enqueuer = Enqueuer(
        app, connection(), PRIMARY, [Target("replicate", "us-east-1/replica", "us-east-1/replica")]
    )
    return Poller(
        source,
        consumer,
        enqueuer,
        record_filter or RecordFilter(),
        PollerOptions(start=start, idle_sleep=0.01, discover_every=0.05, status_every=3600),
    )


def seed_checkpoint(consumer: str, shard_id: str, sequence: str) -> None:
    """A checkpoint left by an earlier run."""
    connection().hset(settings().key("checkpoint", consumer), shard_id, sequence)


def run_until(poller: Poller, done: Callable[[], bool]) -> None:
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    try:
        wait_until(done, 20, "the poller")
    finally:
        poller.stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_parents_finish_before_children_and_new_shards_are_found(env: dict[str, str]) -> None:
    fake, app = FakeStreams(), RecordingApp()
    fake.add_shard("a")
    for i in range(7):
        fake.put("a", f"a{i}")
    fake.close("a")
    fake.add_shard("b", parent="a")
    fake.add_shard("c", parent="a")
    for i in range(5):
        fake.put("b", f"b{i}")
        fake.put("c", f"c{i}")
    poller = make_poller(fake, app)

    def grow() -> bool:
        # while running: c splits into d, which appears later and gets records
        if "d" not in fake.shards and len(app.sent_keys()) >= 17:
            fake.close("c")
            fake.add_shard("d", parent="c")
            fake.put("d", "d0")
        return "d0" in app.sent_keys()

    run_until(poller, grow)

    keys = app.sent_keys()
    assert sorted(keys) == sorted(
        [f"a{i}" for i in range(7)]
        + [f"b{i}" for i in range(5)]
        + [f"c{i}" for i in range(5)]
        + ["d0"]
    )
    assert max(keys.index(f"a{i}") for i in range(7)) < min(
        keys.index(k) for k in keys if not k.startswith("a")
    )
    assert keys.index("c4") < keys.index("d0")
    assert fake.reads.index("b") > len(fake.reads) - fake.reads[::-1].index("a") - 1
    saved = Checkpoints(connection(), "c").load()
    assert saved["a"] == SHARD_END and saved["c"] == SHARD_END and saved["d"] != SHARD_END


def test_restart_resumes_after_the_checkpoint(env: dict[str, str]) -> None:
    fake, app = FakeStreams(), RecordingApp()
    fake.add_shard("s")
    for i in range(10):
        fake.put("s", f"k{i}")
    run_until(make_poller(fake, app), lambda: len(app.sent_keys()) == 10)
    for i in range(10, 15):
        fake.put("s", f"k{i}")

    again = RecordingApp()
    run_until(make_poller(fake, again), lambda: len(again.sent_keys()) == 5)

    assert again.sent_keys() == [f"k{i}" for i in range(10, 15)]


def test_expired_iterator_is_reacquired_from_the_checkpoint(env: dict[str, str]) -> None:
    fake, app = FakeStreams(), RecordingApp()
    fake.add_shard("s")
    for i in range(9):
        fake.put("s", f"k{i}")
    fake.expire_next_reads = 2

    run_until(make_poller(fake, app), lambda: len(app.sent_keys()) == 9)

    assert app.sent_keys() == [f"k{i}" for i in range(9)]  # nothing lost, nothing twice


def test_trimmed_checkpoint_is_reported_as_a_gap(env: dict[str, str], caplog: Any) -> None:
    fake, app = FakeStreams(), RecordingApp()
    fake.add_shard("s")
    for i in range(4):
        fake.put("s", f"k{i}")
    seed_checkpoint("c", "s", "50")  # older than anything the shard still has
    fake.shards["s"].trimmed_before = 101
    poller = make_poller(fake, app)

    run_until(poller, lambda: len(app.sent_keys()) == 4)

    assert poller.stats.gaps == 1


def test_vanished_unfinished_parent_is_a_gap(env: dict[str, str]) -> None:
    fake, app = FakeStreams(), RecordingApp()
    seed_checkpoint("c", "gone", "42")
    fake.add_shard("child", parent="gone")
    fake.put("child", "x")
    poller = make_poller(fake, app)

    run_until(poller, lambda: app.sent_keys() == ["x"])

    assert poller.stats.gaps == 1


def test_malformed_record_is_counted_and_does_not_stall_the_shard(env: dict[str, str]) -> None:
    fake, app = FakeStreams(), RecordingApp()
    fake.add_shard("s")
    fake.put("s", "before")
    fake.put("s", "", record={"eventName": "INSERT", "dynamodb": {"NewImage": {}}})
    fake.put("s", "", record={"eventName": "INSERT", "dynamodb": {"Keys": {"id": {"X": "1"}}}})
    fake.put("s", "after")
    poller = make_poller(fake, app)

    run_until(poller, lambda: "after" in app.sent_keys())

    assert app.sent_keys() == ["before", "after"] and poller.stats.records_malformed == 2


def test_broker_down_keeps_the_page_until_it_is_sent(env: dict[str, str]) -> None:
    fake, app = FakeStreams(), RecordingApp(fail_next=2)
    fake.add_shard("s")
    for i in range(3):
        fake.put("s", f"k{i}")
    poller = make_poller(fake, app)

    run_until(poller, lambda: len(app.sent_keys()) == 3)

    assert sorted(app.sent_keys()) == ["k0", "k1", "k2"]


@pytest.mark.parametrize(("role", "expected"), [("before", ["old"]), ("after", ["new"])])
def test_turnover_keeps_one_side_of_the_cut_over(
    env: dict[str, str], role: str, expected: list[str]
) -> None:
    from datetime import UTC, datetime

    fake, app = FakeStreams(), RecordingApp()
    fake.add_shard("s")
    stamp = {"old": datetime(2026, 1, 1, tzinfo=UTC), "new": datetime(2026, 6, 1, tzinfo=UTC)}
    for key, when in stamp.items():
        fake.put(
            "s",
            key,
            record={
                "eventName": "MODIFY",
                "dynamodb": {"Keys": {"id": {"S": key}}, "ApproximateCreationDateTime": when},
            },
        )
    fake.put("s", "marker")
    cut = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    poller = make_poller(fake, app, record_filter=RecordFilter(role, cut))

    run_until(poller, lambda: poller.stats.records_read == 3)

    assert [k for k in app.sent_keys() if k != "marker"] == expected


@pytest.mark.parametrize(("skip", "expected"), [(False, ["ttl", "user"]), (True, ["user"])])
def test_ttl_deletes_are_propagated_unless_skipped(
    env: dict[str, str], skip: bool, expected: list[str]
) -> None:
    fake, app = FakeStreams(), RecordingApp()
    fake.add_shard("s")
    fake.put(
        "s",
        "ttl",
        record={
            "eventName": "REMOVE",
            "dynamodb": {"Keys": {"id": {"S": "ttl"}}},
            # the DynamoDB Streams API's names (before, only Kinesis's type/principalId counted)
            "userIdentity": {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"},
        },
    )
    fake.put(
        "s", "user", record={"eventName": "REMOVE", "dynamodb": {"Keys": {"id": {"S": "user"}}}}
    )
    poller = make_poller(fake, app, record_filter=RecordFilter(skip_ttl_deletes=skip))

    run_until(poller, lambda: poller.stats.records_read == 2)

    assert app.sent_keys() == expected


def test_a_burst_on_one_key_is_coalesced(env: dict[str, str]) -> None:
    fake, app = FakeStreams(), RecordingApp()
    fake.add_shard("s")
    for _ in range(200):
        fake.put("s", "hot")
    poller = make_poller(fake, app)

    run_until(poller, lambda: poller.stats.records_read == 200)

    # No worker released the mark, so the key waits in the queue once: 1 message, not 200.
    assert app.sent_keys() == ["hot"] and poller.stats.keys_coalesced > 0


def test_start_latest_skips_what_is_already_there(env: dict[str, str]) -> None:
    fake, app = FakeStreams(), RecordingApp()
    fake.add_shard("s")
    fake.put("s", "old")
    poller = make_poller(fake, app, start=Position("LATEST"))
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    wait_until(lambda: "s" in fake.reads, 10, "first read")
    fake.put("s", "new")
    wait_until(lambda: app.sent_keys() == ["new"], 10, "the new record")
    poller.stop.set()
    thread.join(10)
    assert app.sent_keys() == ["new"]


def test_start_time_on_dynamodb_streams_filters_older_records(env: dict[str, str]) -> None:
    from datetime import UTC, datetime

    fake, app = FakeStreams(), RecordingApp()
    fake.add_shard("s")
    for key, month in (("jan", 1), ("jun", 6)):
        fake.put(
            "s",
            key,
            record={
                "eventName": "MODIFY",
                "dynamodb": {
                    "Keys": {"id": {"S": key}},
                    "ApproximateCreationDateTime": datetime(2026, month, 1, tzinfo=UTC),
                },
            },
        )
    start = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    poller = make_poller(
        fake,
        app,
        record_filter=RecordFilter(not_before=start),
        start=Position("AT_TIMESTAMP", timestamp=start),
    )

    run_until(poller, lambda: poller.stats.records_read == 2)

    assert app.sent_keys() == ["jun"]


def test_endpoint_errors_do_not_stop_the_producer(env: dict[str, str]) -> None:
    fake, app = FakeStreams(fail_next_calls=3), RecordingApp()
    fake.add_shard("s")
    for i in range(4):
        fake.put("s", f"k{i}")
    poller = make_poller(fake, app)

    run_until(poller, lambda: len(app.sent_keys()) == 4)

    assert app.sent_keys() == ["k0", "k1", "k2", "k3"] and fake.fail_next_calls == 0
