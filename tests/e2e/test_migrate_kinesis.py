"""`replicator migrate --kinesis-stream`: the tail reads the Kinesis stream SOURCE writes its
changes to (Kinesis Data Streams for DynamoDB), so the backfill may take as long as that
stream keeps records (up to a year) instead of DynamoDB Streams' 24 h.

moto does not forward a table's changes to Kinesis: the writer here puts each change's record
on the stream itself, in the JSON that AWS writes.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import pytest

from commands.migrate.preflight import check
from tasks.aws.capacity import Rate
from tasks.core.config import settings
from tasks.core.errors import InvalidInputError
from tasks.core.locations import REPLICA
from tests.support.migration import migrate, ready_line
from tests.support.servers import wait_until
from tests.support.tables import client, create_table, normalized_table
from tests.support.workload import kinesis_record

STREAM = "source-changes"


def kinesis_stream(moto_url: str, hours: int = 168) -> Any:
    kinesis = client(moto_url, "kinesis")
    kinesis.create_stream(StreamName=STREAM, ShardCount=2)
    wait_until(
        lambda: (
            kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"][
                "StreamStatus"
            ]
            == "ACTIVE"
        ),
        30,
        "the stream",
    )
    kinesis.increase_stream_retention_period(StreamName=STREAM, RetentionPeriodHours=hours)
    return kinesis


class Writer:
    """Puts, updates and deletes on SOURCE, each change also put on the Kinesis stream."""

    def __init__(self, moto_url: str) -> None:
        self.stop = threading.Event()
        self.ops = 0
        self.thread = threading.Thread(target=self._run, args=(moto_url,), daemon=True)
        self.thread.start()

    def _run(self, moto_url: str) -> None:
        ddb, kinesis, rng = client(moto_url), client(moto_url, "kinesis"), random.Random(3)
        while not self.stop.is_set():
            key = {"id": {"S": f"k{rng.randrange(300):04d}"}}
            if rng.random() < 0.8:
                item = {**key, "v": {"N": str(self.ops)}}
                ddb.put_item(TableName="source", Item=item)
                event = "MODIFY"
            else:
                ddb.delete_item(TableName="source", Key=key)
                event = "REMOVE"
            kinesis.put_record(
                StreamName=STREAM, Data=kinesis_record(key, event), PartitionKey=key["id"]["S"]
            )
            self.ops += 1
            self.stop.wait(0.02)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join()


def load(moto_url: str, n: int) -> None:
    ddb = client(moto_url)
    for base in range(0, n, 25):
        rows = [
            {"PutRequest": {"Item": {"id": {"S": f"k{i:04d}"}, "v": {"N": str(i)}}}}
            for i in range(base, min(n, base + 25))
        ]
        ddb.batch_write_item(RequestItems={"source": rows})


def test_a_live_migration_tails_the_kinesis_stream(
    env: dict[str, str], moto_url: str, start_worker: Any, tmp_path: Path
) -> None:
    create_table(moto_url, "source")  # no DynamoDB stream: its changes go to Kinesis only
    kinesis_stream(moto_url)
    load(moto_url, 300)
    start_worker(concurrency=2)
    writer = Writer(moto_url)
    args = [f"{moto_url}/source", f"{moto_url}/target", "--create", "--segments", "2"]
    command = migrate(env, tmp_path, *args, "--kinesis-stream", STREAM, "--name", "kin")
    try:
        wait_until(lambda: '"phase": "ready"' in command.output(), 240, "ready")
    finally:
        writer.finish()
    assert writer.ops > 0
    report = ready_line(command.output())
    assert report["discrepancies_missed"] == 0, report
    wait_until(
        lambda: normalized_table(moto_url, "target") == normalized_table(moto_url, "source"),
        90,
        "target to equal source",
    )
    assert command.terminate() == 0, command.output()


def test_preflight_takes_the_kinesis_streams_retention(env: dict[str, str], moto_url: str) -> None:
    create_table(moto_url, "source", stream="KEYS_ONLY")
    create_table(moto_url, "target")
    kinesis_stream(moto_url, hours=168)
    load(moto_url, 100)
    source = settings().table(f"{moto_url}/source")
    target = settings().table(f"{moto_url}/target", REPLICA)
    slow = Rate.parse("0.002")  # 100 items: about 14 h, past half of 24 h, within half a week
    with pytest.raises(InvalidInputError, match=r"12\.0 h .*24 h retention.*--kinesis-stream"):
        check(source, target, slow, create=False)
    found = check(source, target, slow, create=False, kinesis_stream=STREAM)
    assert 13 * 3600 < found.estimate_seconds < 15 * 3600
    create_table(moto_url, "plain")
    plain = settings().table(f"{moto_url}/plain")
    with pytest.raises(InvalidInputError, match=r"has no stream.*--kinesis-stream"):
        check(plain, target, Rate.parse("100"), create=False)
    check(plain, target, Rate.parse("100"), create=False, kinesis_stream=STREAM)
