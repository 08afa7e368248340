"""Incremental backups end to end: the producer's --backup, and restore-table --at TIME."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tasks.backup.incremental import S3Sink, legacy_ids
from tasks.core.keys import Key
from tasks.core.locations import parse_s3
from tasks.replication.sync import sync_keys
from tests.integration.test_backup_incremental import make_bucket, run, run_here
from tests.support.servers import wait_until
from tests.support.tables import client, create_table, scan_all, table


def _phase(moto_url: str, puts: dict[str, str], deletes: list[str]) -> float:
    """Change the primary, back the keys up, and return a time between this phase and the next.

    S3 stamps versions to the second, so the next phase starts in a later second.
    """
    ddb = client(moto_url)
    for key, value in puts.items():
        ddb.put_item(TableName="primary", Item={"id": {"S": key}, "v": {"S": value}})
    for key in deletes:
        ddb.delete_item(TableName="primary", Key={"id": {"S": key}})
    sink = S3Sink(parse_s3("s3://backups/inc"), "primary")
    keys = [{"id": {"S": k}} for k in [*puts, *deletes]]
    assert sync_keys(table(f"{moto_url}/primary"), sink, [Key.of(k) for k in keys]).failed == {}
    moment = time.time()
    time.sleep(math.ceil(moment) - moment + 0.05)
    return moment


def _table(moto_url: str, name: str) -> dict[str, str]:
    return {json.loads(k)["id"]["S"]: i["v"]["S"] for k, i in scan_all(moto_url, name).items()}


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def test_point_in_time_restores_give_the_three_right_tables(
    env: dict[str, str], moto_url: str, tmp_path: Path
) -> None:
    create_table(moto_url, "primary")
    make_bucket(moto_url)
    t1 = _phase(moto_url, {"a": "1", "b": "1", "c": "1"}, [])
    t2 = _phase(moto_url, {"a": "2", "d": "1"}, ["b"])
    t3 = _phase(moto_url, {"a": "3", "b": "again"}, ["c"])
    source = "s3://backups/inc/primary"
    create_table(moto_url, "at-two")
    client(moto_url).put_item(TableName="at-two", Item={"id": {"S": "b"}, "v": {"S": "stale"}})
    client(moto_url).put_item(TableName="at-two", Item={"id": {"S": "zzz"}, "v": {"S": "other"}})

    first = run(env, "restore-table", source, f"{moto_url}/at-one", "--at", _iso(t1), "--create")
    second = run(env, "restore-table", source, f"{moto_url}/at-two", "--at", str(int(t2 * 1000)))
    create_table(moto_url, "at-three")
    thirds = [
        run(
            env,
            "restore-table",
            source,
            f"{moto_url}/at-three",
            "--at",
            _iso(t3),
            "--segment",
            str(i),
            "--segments",
            "2",
        )
        for i in range(2)
    ]

    for result in (first, second, *thirds):
        assert result.returncode == 0, result.stderr
    assert _table(moto_url, "at-one") == {"a": "1", "b": "1", "c": "1"}
    assert _table(moto_url, "at-two") == {"a": "2", "c": "1", "d": "1", "zzz": "other"}
    assert _table(moto_url, "at-three") == {"a": "3", "b": "again", "d": "1"}
    assert _table(moto_url, "at-three") == _table(moto_url, "primary")

    create_table(moto_url, "some")
    client(moto_url).put_item(TableName="some", Item={"id": {"S": "b"}, "v": {"S": "stale"}})
    (tmp_path / "keys").write_text('{"id":"b"}\n{"id":{"S":"c"}}\n')
    one = run(
        env, "restore-table", source, f"{moto_url}/some", "--at", _iso(t1), "--key", '{"id":"a"}'
    )
    listed = run(
        env,
        "restore-table",
        source,
        f"{moto_url}/some",
        "--at",
        _iso(t2),
        "--keys",
        str(tmp_path / "keys"),
    )
    assert one.returncode == 0 and listed.returncode == 0, one.stderr + listed.stderr
    assert json.loads(listed.stdout.splitlines()[-1])["delete"] == 1
    assert _table(moto_url, "some") == {"a": "1", "c": "1"}


def test_point_in_time_needs_a_versioned_bucket_and_a_fitting_target(
    env: dict[str, str], moto_url: str
) -> None:
    create_table(moto_url, "target")
    make_bucket(moto_url, "flat", versioned=False)
    s3: Any = make_bucket(moto_url)
    s3.put_object(Bucket="backups", Key="inc/primary/" + "b" * 64, Body=b'{"other":{"N":"1"}}')
    now = _iso(time.time() + 5)

    unversioned = run(
        env, "restore-table", "s3://flat/inc/primary", f"{moto_url}/target", "--at", now
    )
    misfit = run(
        env, "restore-table", "s3://backups/inc/primary", f"{moto_url}/target", "--at", now
    )
    bad_time = run_here(
        "restore-table",
        "s3://backups/inc/primary",
        f"{moto_url}/target",
        "--at",
        "last tuesday",
    )
    key_alone = run_here(
        "restore-table",
        "s3://backups/inc/primary",
        f"{moto_url}/target",
        "--key",
        '{"id":"a"}',
    )

    assert unversioned.returncode == 2 and "versioning" in unversioned.stderr
    assert misfit.returncode == 3 and "does not fit id (S)" in misfit.stderr
    assert bad_time.returncode == 2 and "invalid time" in bad_time.stderr
    assert key_alone.returncode == 2 and "--at" in key_alone.stderr
    assert scan_all(moto_url, "target") == {}


def test_producer_backup_writes_each_change_as_one_version(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any
) -> None:
    create_table(moto_url, "primary", stream="KEYS_ONLY")
    s3, ddb = make_bucket(moto_url), client(moto_url)
    start_worker(concurrency=2)
    start_producer("--primary", f"{moto_url}/primary", "--backup", "s3://backups/inc")
    steps = [
        ("ins", "1"),
        ("mod", "1"),
        ("mod", "2"),
        ("gone", "1"),
        ("gone", "2"),
        ("gone", None),
        ("mix", "1"),
        ("mix", None),
        ("mix", "2"),
        ("mix", "3"),
    ]

    def current(key: str) -> str | None:
        name = f"inc/primary/{Key.of({'id': {'S': key}}).id}"
        try:
            body = s3.get_object(Bucket="backups", Key=name)["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        return str(json.loads(body)["v"]["S"])

    for key, value in steps:  # each change is backed up before the next one is made
        if value is None:
            ddb.delete_item(TableName="primary", Key={"id": {"S": key}})
        else:
            ddb.put_item(TableName="primary", Item={"id": {"S": key}, "v": {"S": value}})
        wait_until(lambda k=key, v=value: current(k) == v, 60, f"{key} backed up as {value}")

    def versions(key: str) -> list[str | None]:
        name = f"inc/primary/{Key.of({'id': {'S': key}}).id}"
        listing = s3.list_object_versions(Bucket="backups", Prefix=name)
        stored = [
            json.loads(
                s3.get_object(Bucket="backups", Key=name, VersionId=v["VersionId"])["Body"].read()
            )["v"]["S"]
            for v in reversed(listing["Versions"])
        ]
        return [*stored, *[None] * len(listing.get("DeleteMarkers", []))]

    assert versions("ins") == ["1"]
    assert versions("mod") == ["1", "2"]
    assert versions("gone") == ["1", "2", None]
    assert sorted(versions("mix"), key=str) == sorted(["1", "2", "3", None], key=str)
    history = run(
        env,
        "incremental-record-history",
        f"{moto_url}/primary",
        "s3://backups/inc",
        '{"id":"mix"}',
        "--json",
    )
    shown = [json.loads(line) for line in history.stdout.splitlines()]
    assert len(shown) == 4 and shown[-1]["item"]["v"] == {"S": "3"}


def test_restores_the_original_tools_md5_named_objects(env: dict[str, str], moto_url: str) -> None:
    create_table(moto_url, "target")
    s3 = make_bucket(moto_url)
    for key in ("one", "two"):
        (legacy,) = legacy_ids(Key.of({"id": {"S": key}}))
        body = json.dumps({"id": {"S": key}, "v": {"S": f"legacy-{key}"}}).encode()
        s3.put_object(Bucket="backups", Key=f"old/primary/{legacy}", Body=body)
    later = _iso(time.time() + 2)

    created = run(
        env,
        "restore-table",
        "s3://backups/old/primary",
        f"{moto_url}/fresh",
        "--at",
        later,
        "--create",
    )
    restored = run(
        env, "restore-table", "s3://backups/old/primary", f"{moto_url}/target", "--at", later
    )

    assert created.returncode == 2 and "records no key schema" in created.stderr
    assert restored.returncode == 0, restored.stderr
    assert _table(moto_url, "target") == {"one": "legacy-one", "two": "legacy-two"}
