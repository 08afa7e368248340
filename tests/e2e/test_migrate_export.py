"""replicator migrate --backfill export: DynamoDB's export instead of a Scan, then the tail from
the capture, under a writer that puts, updates and deletes (exported items included)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.test_backup_incremental import make_bucket
from tests.support.migration import (
    Writers,
    error_lines,
    load,
    migrate,
    migration_record,
    ready_line,
)
from tests.support.servers import wait_until
from tests.support.tables import client, create_table, normalized_table


def _source(moto_url: str, pitr: bool = True) -> None:
    create_table(moto_url, "source", stream="KEYS_ONLY")
    load(moto_url, "source", 400)
    if pitr:
        client(moto_url).update_continuous_backups(
            TableName="source",
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    make_bucket(moto_url, "exports", versioned=False)
    create_table(moto_url, "target")


def _source_scans(proxy: Any) -> int:
    return sum(1 for c in proxy.calls("Scan") if (c.document or {}).get("TableName") == "source")


def test_an_export_backfill_under_writes_ends_equal_and_scans_nothing_before_verify(
    env: dict[str, str], moto_url: str, fault_proxy: Any, start_worker: Any, tmp_path: Path
) -> None:
    _source(moto_url)
    start_worker(concurrency=2)
    writers = Writers(moto_url)
    command = migrate(
        env,
        tmp_path,
        f"{fault_proxy.url}/source",
        f"{moto_url}/target",
        "--backfill",
        "export",
        "--export-to",
        "s3://exports/migrations",
        "--segments",
        "2",
        "--exit-when-ready",
        "--name",
        "by-export",
    )
    wait_until(lambda: "[migrate] catch-up" in command.output(), 180, "the load done")
    scans_before_verify = _source_scans(fault_proxy)
    writers.finish()

    assert command.process.wait(240) == 0, command.output()
    report = ready_line(command.output())
    assert scans_before_verify == 0 and _source_scans(fault_proxy) > 0  # verify does scan
    assert writers.ops > 0 and report["items_copied"] > 0
    assert "[migrate] export arn:aws:dynamodb:" in command.output()
    assert normalized_table(moto_url, "target") == normalized_table(moto_url, "source")


def test_an_export_backfill_needs_point_in_time_recovery_and_goes_with_export_to(
    env: dict[str, str], moto_url: str, tmp_path: Path
) -> None:
    _source(moto_url, pitr=False)

    refused = migrate(
        env,
        tmp_path,
        f"{moto_url}/source",
        f"{moto_url}/target",
        "--backfill",
        "export",
        "--export-to",
        "s3://exports/m",
        "--name",
        "no-pitr",
    )
    alone = migrate(
        env, tmp_path, f"{moto_url}/source", f"{moto_url}/target", "--backfill", "export"
    )

    assert refused.process.wait(60) == 2
    (line,) = error_lines(refused.output())
    assert "point-in-time recovery is off" in line and "update-continuous-backups" in line
    assert alone.process.wait(60) == 2
    assert "--export-to" in " ".join(error_lines(alone.output()))
    assert json.dumps(normalized_table(moto_url, "target")) == "{}"


def _loaded_so_far(name: str) -> int:
    from tasks.coord.redis_conn import connection
    from tasks.jobs.redis_store import RedisJobStore

    job = migration_record(name).get("backfill_job")
    if not job:
        return 0
    return int(RedisJobStore(connection()).snapshot(job).totals.get("restored", 0))


def test_a_load_survives_a_killed_worker_and_a_killed_command(
    env: dict[str, str], moto_url: str, start_worker: Any, tmp_path: Path
) -> None:
    create_table(moto_url, "source", stream="KEYS_ONLY")
    load(moto_url, "source", 5000)  # five export files
    client(moto_url).update_continuous_backups(
        TableName="source",
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    make_bucket(moto_url, "exports", versioned=False)
    create_table(moto_url, "target")
    doomed = start_worker(concurrency=2, queues="bulk")
    start_worker(concurrency=2)
    args = [f"{moto_url}/source", f"{moto_url}/target", "--backfill", "export"]
    args += ["--export-to", "s3://exports/m", "--segments", "3", "--rate", "400"]
    args += ["--exit-when-ready", "--name", "killed-load"]

    first = migrate(env, tmp_path, *args)
    wait_until(lambda: _loaded_so_far("killed-load") >= 400, 120, "load progress")
    doomed.kill()  # SIGKILL mid-file: its segments come back to the other worker
    wait_until(lambda: _loaded_so_far("killed-load") >= 1200, 120, "more load progress")
    job = migration_record("killed-load")["backfill_job"]
    first.process.kill()  # the command itself, mid-load
    first.process.wait(10)
    assert migration_record("killed-load")["phase"] == "backfill"

    second = migrate(env, tmp_path, *args)

    assert second.process.wait(300) == 0, second.output()
    report = ready_line(second.output())
    assert migration_record("killed-load")["export_arn"].startswith("arn:aws:dynamodb:")
    assert report["items_copied"] == 5000  # every file's lines counted once, none missing
    assert migration_record("killed-load")["backfill_job"] == job  # waited for, not restarted
    assert normalized_table(moto_url, "target") == normalized_table(moto_url, "source")
