"""Incremental backups on moto's versioned S3: exact objects and versions, history, diff-record.

Also home of the small helpers the other backup test modules import.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tasks.aws import s3 as s3_objects
from tasks.aws.dynamo import Failure
from tasks.backup.history import history
from tasks.backup.incremental import S3Sink, legacy_ids
from tasks.core.keys import Key
from tasks.core.locations import parse_s3
from tasks.replication.sync import sync_keys
from tests.support.servers import wait_until
from tests.support.tables import client, create_table, table
from worker.app import app

BIN = Path(sys.executable).parent


def make_bucket(moto_url: str, name: str = "backups", versioned: bool = True) -> Any:
    s3 = client(moto_url, "s3")
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return s3


def run(
    env: dict[str, str], command: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / command), *args],
        env=env,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
        check=False,
    )


def run_here(command: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A console script run in this process (click's CliRunner): faster than ``run``."""
    (entry,) = entry_points(group="console_scripts", name=command)
    result = CliRunner().invoke(entry.load(), list(args))
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def stored_versions(s3: Any, bucket: str, key: str) -> list[Any]:
    """The object's stored versions (not delete markers), oldest first, as JSON."""
    listing = s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
    return [
        json.loads(s3.get_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])["Body"].read())
        for v in reversed(listing)  # S3 lists a key's versions newest first
        if v["Key"] == key
    ]


def _backup(moto_url: str, keys: list[dict[str, Any]]) -> None:
    sink = S3Sink(parse_s3("s3://backups/inc"), "primary")
    outcome = sync_keys(table(f"{moto_url}/primary"), sink, [Key.of(k) for k in keys])
    assert outcome.failed == {}


def test_stream_sequences_leave_exactly_the_right_versions(
    env: dict[str, str], moto_url: str
) -> None:
    create_table(moto_url, "primary")
    s3, ddb = make_bucket(moto_url), client(moto_url)
    name = {k: f"inc/primary/{Key.of({'id': {'S': k}}).id}" for k in ("ins", "mod", "del", "mix")}

    def change(key: str, value: str | None) -> None:
        if value is None:
            ddb.delete_item(TableName="primary", Key={"id": {"S": key}})
        else:
            ddb.put_item(TableName="primary", Item={"id": {"S": key}, "v": {"S": value}})
        _backup(moto_url, [{"id": {"S": key}}])
        _backup(moto_url, [{"id": {"S": key}}])  # a duplicate delivery adds no version

    for key in ("ins", "mod", "del", "mix"):
        change(key, "1")
    for key in ("mod", "del", "mix"):
        change(key, "2")
    change("del", None)
    change("mix", None)
    change("mix", "3")
    _backup(moto_url, [{"id": {"S": k}} for k in ("ins", "mod", "del", "mix")])  # a replay

    def values(key: str) -> list[str]:
        return [v["v"]["S"] for v in stored_versions(s3, "backups", name[key])]

    def markers(key: str) -> int:
        listing = s3.list_object_versions(Bucket="backups", Prefix=name[key])
        return len(listing.get("DeleteMarkers", []))

    assert (values("ins"), markers("ins")) == (["1"], 0)
    assert (values("mod"), markers("mod")) == (["1", "2"], 0)
    assert (values("del"), markers("del")) == (["1", "2"], 1)
    assert (values("mix"), markers("mix")) == (["1", "2", "3"], 1)
    current = s3.list_objects_v2(Bucket="backups", Prefix="inc/primary/")["Contents"]
    assert sorted(o["Key"] for o in current) == sorted([name["ins"], name["mod"], name["mix"]])
    body = s3.get_object(Bucket="backups", Key=name["mix"])["Body"].read()
    assert body == b'{"id":{"S":"mix"},"v":{"S":"3"}}'


def test_backup_record_task_in_a_worker(
    env: dict[str, str], moto_url: str, start_worker: Any
) -> None:
    create_table(moto_url, "primary")
    s3, ddb = make_bucket(moto_url), client(moto_url)
    for i in range(30):
        ddb.put_item(TableName="primary", Item={"id": {"S": f"k{i}"}, "n": {"N": str(i)}})
    gone = Key.of({"id": {"S": "gone"}})
    s3.put_object(Bucket="backups", Key=f"inc/primary/{gone.id}", Body=b"{}")
    start_worker()
    keys = [{"id": {"S": f"k{i}"}} for i in range(30)] + [{"id": {"S": "gone"}}]

    app.conf.broker_url = env["CELERY_BROKER_URL"]
    app.send_task(
        "backup-record",
        args=(f"{moto_url}/primary", "s3://backups/inc", keys),
        kwargs={"created": [], "session": None},
    )

    def listed() -> list[str]:
        found = s3.list_objects_v2(Bucket="backups", Prefix="inc/primary/").get("Contents", [])
        return sorted(o["Key"] for o in found)

    expected = sorted(f"inc/primary/{Key.of(k).id}" for k in keys[:30])
    wait_until(lambda: listed() == expected, 30, "30 objects and the deleted one gone")
    body = s3.get_object(Bucket="backups", Key=f"inc/primary/{Key.of(keys[7]).id}")["Body"].read()
    assert json.loads(body) == {"id": {"S": "k7"}, "n": {"N": "7"}}


def test_record_commands_backup_diff_and_history(env: dict[str, str], moto_url: str) -> None:
    create_table(moto_url, "primary")
    s3, ddb = make_bucket(moto_url), client(moto_url)
    table, url, key = f"{moto_url}/primary", "s3://backups/inc", '{"id":"r1"}'

    ddb.put_item(TableName="primary", Item={"id": {"S": "r1"}, "v": {"N": "1"}})
    assert "[put]" in run(env, "incremental-backup-record", table, url, key).stdout
    assert run(env, "incremental-diff-record", table, url, key).returncode == 0
    ddb.put_item(TableName="primary", Item={"id": {"S": "r1"}, "v": {"N": "2"}})
    different = run(env, "incremental-diff-record", table, url, '{"id":{"S":"r1"}}')
    assert different.returncode == 1 and "✘" in different.stdout
    assert "[put]" in run(env, "incremental-backup-record", table, url, key).stdout
    assert "[unchanged]" in run(env, "incremental-backup-record", table, url, key).stdout
    ddb.delete_item(TableName="primary", Key={"id": {"S": "r1"}})
    assert "[delete]" in run(env, "incremental-backup-record", table, url, key).stdout
    assert "✔" in run(env, "incremental-diff-record", table, url, key).stdout

    shown = run(env, "incremental-record-history", table, url, key, "--json")
    versions = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [v["item"]["v"]["N"] if v["item"] else None for v in versions] == ["1", "2", None]
    assert [v["deleted"] for v in versions] == [False, False, True]
    assert s3.list_object_versions(Bucket="backups")["Versions"]


def test_history_reads_the_original_tools_layout(env: dict[str, str], moto_url: str) -> None:
    create_table(moto_url, "primary")
    s3 = make_bucket(moto_url)
    (legacy,) = legacy_ids(Key.of({"id": {"S": "old"}}))
    s3.put_object(Bucket="backups", Key=f"inc/primary/{legacy}", Body=b'{"id":{"S":"old"}}')

    shown = run(
        env, "incremental-record-history", f"{moto_url}/primary", "s3://backups/inc", '{"id":"old"}'
    )

    assert shown.returncode == 0, shown.stderr
    assert '{"id":{"S":"old"}}' in shown.stdout and "[versions] 1" in shown.stdout


def test_bad_input_gets_one_clear_line(env: dict[str, str], moto_url: str) -> None:
    create_table(moto_url, "primary")
    make_bucket(moto_url, "flat", versioned=False)
    table = f"{moto_url}/primary"

    unversioned = run(env, "incremental-record-history", table, "s3://flat/inc", '{"id":"a"}')
    missing = run(env, "incremental-backup-record", table, "s3://nobucket/inc", '{"id":"a"}')
    bad_url = run(env, "incremental-diff-record", table, "http://x/inc", '{"id":"a"}')
    bad_key = run(env, "incremental-diff-record", table, "s3://flat/inc", '{"nope":"a"}')

    assert unversioned.returncode == 2 and "put-bucket-versioning" in unversioned.stderr
    assert missing.returncode == 2 and "nobucket" in missing.stderr
    assert bad_url.returncode == 2 and "invalid S3 location" in bad_url.stderr
    assert bad_key.returncode == 2 and "key schema" in bad_key.stderr
    for result in (unversioned, missing, bad_url, bad_key):
        assert "Traceback" not in result.stderr


def test_history_follows_every_page_of_the_listing(
    env: dict[str, str], moto_url: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(s3_objects, "LIST_PAGE_SIZE", 2)
    create_table(moto_url, "primary")
    make_bucket(moto_url)
    ddb = client(moto_url)
    for other in ("x", "y"):
        ddb.put_item(TableName="primary", Item={"id": {"S": other}})
        _backup(moto_url, [{"id": {"S": other}}])
    for value in range(5):
        ddb.put_item(TableName="primary", Item={"id": {"S": "k"}, "v": {"N": str(value)}})
        _backup(moto_url, [{"id": {"S": "k"}}])
    ddb.delete_item(TableName="primary", Key={"id": {"S": "k"}})
    _backup(moto_url, [{"id": {"S": "k"}}])

    entries = list(history(parse_s3("s3://backups/inc/primary"), Key.of({"id": {"S": "k"}})))

    assert [e.item["v"]["N"] if e.item else None for e in entries] == [
        "0",
        "1",
        "2",
        "3",
        "4",
        None,
    ]


class HeldS3Sink(S3Sink):
    """The incremental backup, except that the first write waits until the test lets it go."""

    reached: threading.Event
    go: threading.Event
    writes: int = 0

    def write(self, present: Sequence[Any], absent: Sequence[Any]) -> dict[str, Failure]:
        self.writes += 1
        if self.writes == 1:
            self.reached.set()
            assert self.go.wait(20)
        return super().write(present, absent)


def test_an_older_read_written_late_does_not_stay(env: dict[str, str], moto_url: str) -> None:
    create_table(moto_url, "primary")
    s3, ddb = make_bucket(moto_url), client(moto_url)
    key = {"id": {"S": "contended"}}
    ddb.put_item(TableName="primary", Item={**key, "v": {"S": "old"}})
    held = HeldS3Sink(parse_s3("s3://backups/inc"), "primary")
    held.reached, held.go = threading.Event(), threading.Event()
    primary = table(f"{moto_url}/primary")
    task_a = threading.Thread(target=sync_keys, args=(primary, held, [Key.of(key)]))
    task_a.start()
    assert held.reached.wait(20)  # A has read "old" and is about to write it

    ddb.put_item(TableName="primary", Item={**key, "v": {"S": "new"}})
    _backup(moto_url, [key])  # task B reads "new" and writes it first
    held.go.set()  # A's older write lands now
    task_a.join(20)

    name = f"inc/primary/{Key.of(key).id}"
    body = json.loads(s3.get_object(Bucket="backups", Key=name)["Body"].read())
    assert body["v"] == {"S": "new"}
    assert stored_versions(s3, "backups", name)[-1]["v"] == {"S": "new"}
