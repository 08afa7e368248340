"""backup-table, incremental-backfill, incremental-snapshot, restore-table: as users run them."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import Any

from tests.integration.test_backup_incremental import make_bucket, run, run_here
from tests.integration.test_sync import EVERY_TYPE
from tests.support.rabbitmq import BOTH_BROKERS
from tests.support.tables import client, create_table, normalized_table


def fill(moto_url: str, table: str, count: int) -> None:
    ddb = client(moto_url)
    items = [{**EVERY_TYPE, "id": {"S": "all-types"}}]
    items += [
        {
            "id": {"S": f"item-{i:05d}"},
            "n": {"N": str(i)},
            "b": {"B": bytes([i % 256])},
            "m": {"M": {"ss": {"SS": [f"s{i}", "t"]}, "l": {"L": [{"NS": ["1", str(i)]}]}}},
        }
        for i in range(count - 1)
    ]
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]
        ddb.batch_write_item(RequestItems={table: requests})


def lines_of(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    body = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return [json.loads(line) for line in body.splitlines()]


def assert_same(moto_url: str, env: dict[str, str], left: str, right: str) -> None:
    """Equal item for item, and diff-tables agrees (exit 0, no discrepancies)."""
    assert normalized_table(moto_url, right) == normalized_table(moto_url, left)
    diff = run(env, "diff-tables", f"{moto_url}/{left}", f"{moto_url}/{right}")
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "[discrepancies] 0" in diff.stdout + diff.stderr


@BOTH_BROKERS
def test_segmented_backup_over_workers_then_segmented_restore(
    env: dict[str, str], moto_url: str, start_worker: Any
) -> None:
    create_table(moto_url, "primary")
    fill(moto_url, "primary", 1000)
    s3 = make_bucket(moto_url)
    start_worker(concurrency=2, queues="bulk")

    backup = run(
        env,
        "backup-table",
        f"{moto_url}/primary",
        "s3://backups/dumps",
        "--jobid",
        "j1",
        "--segments",
        "3",
    )

    assert backup.returncode == 0, backup.stderr
    objects = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="backups")["Contents"])
    assert objects == ["dumps/j1/0", "dumps/j1/1", "dumps/j1/2"]
    per_object = [len(lines_of(s3, "backups", key)) for key in objects]
    assert sum(per_object) == 1000 and all(per_object)
    summary = json.loads(backup.stdout.splitlines()[-1])
    assert summary["items"] == 1000 and summary["segments_written"] == 3
    assert summary["bytes"] == sum(
        o["Size"] for o in s3.list_objects_v2(Bucket="backups")["Contents"]
    )
    assert backup.stdout.count("[segment ") == 3

    restore = run(
        env,
        "restore-table",
        "s3://backups/dumps/j1",
        f"{moto_url}/restored",
        "--create",
        "--segments",
        "2",
    )

    assert restore.returncode == 0, restore.stderr
    assert json.loads(restore.stdout.splitlines()[-1])["restored"] == 1000
    assert_same(moto_url, env, "primary", "restored")

    backfill = run(
        env, "incremental-backfill", f"{moto_url}/primary", "s3://backups/inc", "--segments", "2"
    )
    assert backfill.returncode == 0, backfill.stderr
    assert json.loads(backfill.stdout.splitlines()[-1])["put"] == 1000
    now = datetime.now(UTC).isoformat()
    at = run(
        env,
        "restore-table",
        "s3://backups/inc/primary",
        f"{moto_url}/at-now",
        "--at",
        now,
        "--create",
        "--segments",
        "2",
    )
    assert at.returncode == 0, at.stderr
    assert_same(moto_url, env, "primary", "at-now")


def test_incremental_backfill_snapshot_and_restore_in_process(
    env: dict[str, str], moto_url: str
) -> None:
    create_table(moto_url, "primary", ("h", "S"), ("r", "N"))
    ddb = client(moto_url)
    for i in range(40):
        ddb.put_item(
            TableName="primary",
            Item={"h": {"S": f"h{i % 7}"}, "r": {"N": str(i)}, "b": {"BS": [b"\x00", bytes([i])]}},
        )
    s3 = make_bucket(moto_url)
    s3.put_object(Bucket="backups", Key="inc/primary2/" + "a" * 64, Body=b'{"h":{"S":"x"}}')

    backfill = run(env, "incremental-backfill", f"{moto_url}/primary", "s3://backups/inc")
    assert backfill.returncode == 0, backfill.stderr
    assert json.loads(backfill.stdout.splitlines()[-1])["put"] == 40
    ddb.delete_item(TableName="primary", Key={"h": {"S": "h0"}, "r": {"N": "0"}})
    run(
        env,
        "incremental-backup-record",
        f"{moto_url}/primary",
        "s3://backups/inc",
        '{"h":"h0","r":0}',
    )
    again = run(env, "incremental-backfill", f"{moto_url}/primary", "s3://backups/inc")
    assert json.loads(again.stdout.splitlines()[-1]).get("put", 0) == 0  # nothing changed

    snap = run(
        env,
        "incremental-snapshot",
        "s3://backups/inc/primary",
        "s3://backups/inc/primary/snapshot.gz",
    )
    assert snap.returncode == 0, snap.stderr
    assert json.loads(snap.stdout)["items"] == 39
    again = run(
        env,
        "incremental-snapshot",
        "s3://backups/inc/primary",
        "s3://backups/inc/primary/snapshot.gz",
    )  # the snapshot itself is left out
    assert json.loads(again.stdout)["items"] == 39
    lines = lines_of(s3, "backups", "inc/primary/snapshot.gz")
    assert len(lines) == 39 and {"h": {"S": "x"}} not in lines

    restore = run(
        env,
        "restore-table",
        "s3://backups/inc/primary/snapshot.gz",
        f"{moto_url}/restored",
        "--create",
        "--rate",
        "1000",
    )
    assert restore.returncode == 0, restore.stderr
    assert_same(moto_url, env, "primary", "restored")


def _upload(s3: Any, key: str, body: bytes) -> None:
    s3.put_object(Bucket="backups", Key=key, Body=body)


def test_bad_backups_fail_clearly_and_never_write_a_partial_item(
    env: dict[str, str], moto_url: str
) -> None:
    create_table(moto_url, "target")
    create_table(moto_url, "other", ("h", "N"))
    s3 = make_bucket(moto_url)
    good = b'{"id":{"S":"good"},"v":{"N":"1"}}\n'
    whole = gzip.compress(good + b'{"id":{"S":"cut"},"v":{"S":"' + b"x" * 5000 + b'"}}\n')
    _upload(s3, "bad/truncated", whole[: len(whole) - 40])
    _upload(s3, "bad/untyped", gzip.compress(good + b'{"id":"plain"}\n'))
    _upload(s3, "bad/corrupt", b"this is not gzip")
    target = f"{moto_url}/target"

    results = {
        name: run_here("restore-table", f"s3://backups/bad/{name}", target)
        for name in ("truncated", "untyped", "corrupt")
    }
    mismatch = run_here("restore-table", "s3://backups/bad/untyped", f"{moto_url}/other")
    s3.put_object(
        Bucket="backups",
        Key="dumps/j/0",
        Body=gzip.compress(good),
        Metadata={"key-schema": '[["id","S"]]'},
    )
    recorded = run_here("restore-table", "s3://backups/dumps/j", f"{moto_url}/other")
    nothing = run_here("restore-table", "s3://backups/none", target)
    bad_url = run_here("restore-table", "s3:/backups", target)

    assert "truncated gzip" in results["truncated"].stderr
    assert "line 2: not typed DynamoDB JSON" in results["untyped"].stderr
    assert "corrupt gzip" in results["corrupt"].stderr
    assert all(r.returncode == 3 for r in results.values())
    assert mismatch.returncode == 3 and "does not fit" in mismatch.stderr
    assert recorded.returncode == 2 and "the backup's key schema is id (S)" in recorded.stderr
    assert nothing.returncode == 2 and "no backup at s3://backups/none" in nothing.stderr
    assert bad_url.returncode == 2 and "invalid S3 location" in bad_url.stderr
    # complete lines before the bad one may be written; the bad item never is
    assert set(normalized_table(moto_url, "target")) <= {'{"id":{"S":"good"}}'}
    assert normalized_table(moto_url, "other") == {}
    for result in [*results.values(), mismatch, recorded, nothing, bad_url]:
        assert "Traceback" not in result.stderr
