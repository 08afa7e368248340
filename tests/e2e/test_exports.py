"""DynamoDB's native exports: backup-table --export, and restore-table from an export's folder
or ARN, a full export followed by incremental ones.

The test server writes exports as AWS does (manifests, ``{"Item": ...}`` data files); moto makes
no incremental exports, so the tests write those in AWS's documented incremental layout.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.test_backup_incremental import make_bucket, run
from tests.support.tables import client, create_table, scan_all


def _values(moto_url: str, name: str) -> dict[str, str]:
    return {json.loads(k)["id"]["S"]: i["v"]["S"] for k, i in scan_all(moto_url, name).items()}


def _source(moto_url: str, count: int, pitr: bool = True) -> Any:
    create_table(moto_url, "src")
    ddb = client(moto_url)
    for i in range(count):
        ddb.put_item(TableName="src", Item={"id": {"S": f"k{i:04}"}, "v": {"S": "full"}})
    if pitr:
        ddb.update_continuous_backups(
            TableName="src",
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    return ddb


def _export(env: dict[str, str], moto_url: str) -> dict[str, Any]:
    done = run(env, "backup-table", f"{moto_url}/src", "s3://exports/daily", "--export")
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return summary


def test_a_table_exported_and_restored_from_the_folder_or_the_arn(
    env: dict[str, str], moto_url: str
) -> None:
    _source(moto_url, 2500)
    s3 = make_bucket(moto_url, "exports", versioned=False)
    summary = _export(env, moto_url)
    create_table(moto_url, "by-arn")
    here = {**env, "AWS_ENDPOINT_URL_DYNAMODB": moto_url}  # the export's own table, by region

    by_folder = run(env, "restore-table", summary["folder"], f"{moto_url}/by-folder", "--create")
    by_arn = run(here, "restore-table", summary["export"], f"{moto_url}/by-arn")
    created = run(here, "restore-table", summary["folder"], f"{moto_url}/made", "--create")

    folder = summary["folder"].removeprefix("s3://exports/")
    names = [o["Key"] for o in s3.list_objects_v2(Bucket="exports")["Contents"]]
    assert f"{folder}/manifest-summary.json" in names and f"{folder}/manifest-files.json" in names
    assert sum(1 for n in names if n.startswith(f"{folder}/data/")) == 3  # 1,000 items a file
    assert summary["items"] == 2500 and summary["export"].endswith(folder.rsplit("/", 1)[1])
    assert by_folder.returncode == 2 and "records no key schema" in by_folder.stderr
    assert by_arn.returncode == 0, by_arn.stderr
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout.splitlines()[-1])["restored"] == 2500
    assert _values(moto_url, "by-arn") == _values(moto_url, "src") == _values(moto_url, "made")


def test_an_export_needs_point_in_time_recovery(env: dict[str, str], moto_url: str) -> None:
    _source(moto_url, 3, pitr=False)
    make_bucket(moto_url, "exports", versioned=False)

    refused = run(env, "backup-table", f"{moto_url}/src", "s3://exports/daily", "--export")
    alone = run(env, "backup-table", f"{moto_url}/src", "s3://exports/daily", "--incremental")

    assert refused.returncode == 2
    assert refused.stderr.startswith("error: point-in-time recovery is off")
    assert "update-continuous-backups" in refused.stderr
    assert alone.returncode == 2 and "--incremental goes with --export" in alone.stderr


def _incremental(
    s3: Any, full: dict[str, Any], number: int, changes: list[tuple[str, str | None]]
) -> datetime:
    """Write an incremental export after ``full`` in AWS's layout; returns its end time."""
    base = full["folder"].removeprefix("s3://exports/").rsplit("/", 1)[0]
    own = full["folder"].removeprefix("s3://exports/")
    body = s3.get_object(Bucket="exports", Key=f"{own}/manifest-summary.json")["Body"].read()
    manifest = json.loads(body)
    start = datetime.fromisoformat(manifest["exportTime"].replace("Z", "+00:00"))
    starts = start + timedelta(minutes=number - 1)
    ends = start + timedelta(minutes=number)
    folder = f"{base}/0000000000000{number}-inc{number}"
    lines = []
    for name, value in changes:
        line: dict[str, Any] = {
            "Metadata": {"WriteTimestampMicros": {"N": str(int(ends.timestamp() * 1e6))}},
            "Keys": {"id": {"S": name}},
        }
        if value is not None:
            line["NewImage"] = {"id": {"S": name}, "v": {"S": value}}
        lines.append(json.dumps(line))
    data = f"{folder}/data/part-0.json.gz"
    s3.put_object(Bucket="exports", Key=data, Body=gzip.compress("\n".join(lines).encode()))
    files = json.dumps({"itemCount": len(lines), "dataFileS3Key": data})
    s3.put_object(Bucket="exports", Key=f"{folder}/manifest-files.json", Body=files.encode())

    def iso(moment: datetime) -> str:
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

    summary = {
        **manifest,
        "exportArn": manifest["exportArn"].rsplit("/", 1)[0] + f"/0000000000000{number}-inc",
        "exportType": "INCREMENTAL_EXPORT",
        "exportFromTime": iso(starts),
        "exportToTime": iso(ends),
        "manifestFilesS3Key": f"{folder}/manifest-files.json",
        "itemCount": len(lines),
        "outputView": "NEW_IMAGE",
    }
    del summary["exportTime"]
    text = json.dumps(summary).encode()
    s3.put_object(Bucket="exports", Key=f"{folder}/manifest-summary.json", Body=text)
    return ends


def test_a_full_export_then_its_incremental_exports_in_order(
    env: dict[str, str], moto_url: str
) -> None:
    _source(moto_url, 20)
    s3 = make_bucket(moto_url, "exports", versioned=False)
    full = _export(env, moto_url)
    # the second changes k0001 again, deletes an exported item, and adds one
    first = _incremental(s3, full, 1, [("k0001", "inc1"), ("k0002", "inc1"), ("new", "inc1")])
    _incremental(s3, full, 2, [("k0001", "inc2"), ("k0003", None), ("new2", "inc2")])
    for name in ("all", "first"):
        create_table(moto_url, name)

    everything = run(env, "restore-table", full["folder"], f"{moto_url}/all")
    until_first = run(
        env, "restore-table", full["folder"], f"{moto_url}/first", "--at", first.isoformat()
    )

    assert everything.returncode == 0, everything.stderr
    assert until_first.returncode == 0, until_first.stderr
    expected = {f"k{i:04}": "full" for i in range(20)}
    after_first = {**expected, "k0001": "inc1", "k0002": "inc1", "new": "inc1"}
    after_both = {**after_first, "k0001": "inc2", "new2": "inc2"}
    del after_both["k0003"]
    assert _values(moto_url, "first") == after_first
    assert _values(moto_url, "all") == after_both
    assert len(json.loads(everything.stdout.splitlines()[-1])["exports"]) == 3


def test_a_corrupt_export_file_fails_with_its_name_and_can_be_resumed(
    env: dict[str, str], moto_url: str
) -> None:
    _source(moto_url, 2500)
    s3 = make_bucket(moto_url, "exports", versioned=False)
    full = _export(env, moto_url)
    folder = full["folder"].removeprefix("s3://exports/")
    listed = s3.list_objects_v2(Bucket="exports", Prefix=f"{folder}/data/")["Contents"]
    broken = sorted(o["Key"] for o in listed)[1]
    good = s3.get_object(Bucket="exports", Key=broken)["Body"].read()
    s3.put_object(Bucket="exports", Key=broken, Body=good[: len(good) // 2])
    create_table(moto_url, "target")

    failed = run(env, "restore-table", full["folder"], f"{moto_url}/target")
    s3.put_object(Bucket="exports", Key=broken, Body=good)
    again = run(env, "restore-table", full["folder"], f"{moto_url}/target")

    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert broken in failed.stderr and "truncated gzip data" in failed.stderr
    summary = json.loads(failed.stdout.splitlines()[-1])
    assert summary["failed_segments"] == 1 and 0 < summary["restored"] < 2500
    assert again.returncode == 0, again.stderr
    assert _values(moto_url, "target") == _values(moto_url, "src")


def test_an_incremental_export_goes_on_from_the_last_export_there(
    env: dict[str, str], moto_url: str, fault_proxy: Any
) -> None:
    _source(moto_url, 5)
    make_bucket(moto_url, "exports", versioned=False)
    source = f"{fault_proxy.url}/src"

    none_yet = run(env, "backup-table", source, "s3://exports/daily", "--export", "--incremental")
    full = run(env, "backup-table", source, "s3://exports/daily", "--export")
    elsewhere = run(env, "backup-table", source, "s3://exports/other", "--export", "--incremental")
    incremental = run(
        env, "backup-table", source, "s3://exports/daily", "--export", "--incremental"
    )

    assert none_yet.returncode == 2 and "run a full export first" in none_yet.stderr
    assert full.returncode == 0, full.stderr
    assert elsewhere.returncode == 2  # the last export must be in the same place
    assert incremental.returncode == 0, incremental.stderr
    asked = [c.document or {} for c in fault_proxy.calls("ExportTableToPointInTime")]
    assert [a.get("ExportType", "FULL_EXPORT") for a in asked] == [
        "FULL_EXPORT",
        "INCREMENTAL_EXPORT",
    ]
    arn = json.loads(full.stdout.splitlines()[-1])["export"]
    described = client(moto_url).describe_export(ExportArn=arn)["ExportDescription"]
    since = asked[1]["IncrementalExportSpecification"]["ExportFromTime"]
    assert since == described["ExportTime"].timestamp()
