"""What ``replicator migrate status`` says of a migration is true: refused, interrupted,
stopped; phase times count the time a command spent, not the time between commands; ``stop``
and ``forget`` say no to a migration in the wrong state. Real commands, workers, moto."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tasks.backup.incremental import CHANGE_TIME, object_key, table_folder
from tasks.core.keys import Key
from tasks.core.locations import parse_s3
from tests.integration.test_backup_incremental import make_bucket
from tests.support import servers
from tests.support.migration import (
    backfilled_so_far,
    error_lines,
    load,
    migrate,
    producers_watched,
    ready_line,
    replicator,
    status_of,
)
from tests.support.tables import client, create_table, scan_all

QUIET_SECONDS = 15.0
"""Time between two runs in which no command runs (more than two commands' start-up)."""


def timed_run(env: dict[str, str], tmp_path: Path, *args: str) -> tuple[int, str, float]:
    """Run the migration to its end: (exit status, output, seconds it ran)."""
    began = time.monotonic()
    command = migrate(env, tmp_path, *args)
    code = command.process.wait(300)
    return code, command.output(), time.monotonic() - began


def set_stream(moto_url: str, enabled: bool) -> None:
    spec: dict[str, Any] = {"StreamEnabled": enabled}
    if enabled:
        spec["StreamViewType"] = "KEYS_ONLY"
    client(moto_url).update_table(TableName="source", StreamSpecification=spec)


def test_a_refused_preflight_is_recorded_refused_and_a_rerun_checks_again(
    env: dict[str, str], moto_url: str, start_worker: Any, tmp_path: Path
) -> None:
    create_table(moto_url, "source")  # no stream: preflight refuses
    load(moto_url, "source", 40)
    args = [f"{moto_url}/source", f"{moto_url}/target", "--create", "--verify", "sample:1"]
    args += ["--exit-when-ready", "--name", "late"]

    code, output, first = timed_run(env, tmp_path, *args)
    assert code == 2, output
    record = status_of(env, tmp_path, "late")
    assert (record["phase"], record["state"]) == ("preflight", "refused")
    assert "has no stream" in record["reason"]
    _, line = replicator(env, tmp_path, "migrate", "status", "late")
    assert "state=refused" in line and "reason=table" in line, line

    time.sleep(QUIET_SECONDS)  # the operator turns the stream on meanwhile
    set_stream(moto_url, True)
    start_worker(concurrency=2)
    code, output, second = timed_run(env, tmp_path, *args)
    assert code == 0, output
    report = ready_line(output)
    assert report["items_copied"] == 40
    # A phase's time is the time the commands spent in it, never the time between them.
    assert sum(report["seconds"].values()) <= first + second, report["seconds"]
    assert status_of(env, tmp_path, "late")["state"] == "stopped"

    set_stream(moto_url, False)  # every phase is done: a rerun checks the tables again
    code, output, _ = timed_run(env, tmp_path, *args)
    assert code == 2, output
    assert len(error_lines(output)) == 1 and "has no stream" in error_lines(output)[0], output
    assert status_of(env, tmp_path, "late")["state"] == "refused"


def test_a_killed_command_shows_interrupted_and_its_dead_time_is_no_phase_time(
    env: dict[str, str], moto_url: str, start_worker: Any, tmp_path: Path
) -> None:
    create_table(moto_url, "source", stream="KEYS_ONLY")
    create_table(moto_url, "target")
    load(moto_url, "source", 3000)
    start_worker(concurrency=2)
    args = [f"{moto_url}/source", f"{moto_url}/target", "--segments", "6", "--rate", "60"]
    args += ["--verify", "sample:1", "--exit-when-ready", "--name", "dies"]

    began = time.monotonic()
    first = migrate(env, tmp_path, *args)
    servers.wait_until(lambda: backfilled_so_far("dies") >= 300, 120, "backfill progress")
    seen = status_of(env, tmp_path, "dies")
    servers.wait_until(  # the heartbeat keeps `updated` fresh while the backfill waits
        lambda: _fresher(status_of(env, tmp_path, "dies"), seen), 20, "a newer heartbeat"
    )
    assert status_of(env, tmp_path, "dies")["phase"] == "backfill"
    first.process.kill()  # SIGKILL: the command says nothing more
    first.process.wait(10)
    first_ran = time.monotonic() - began

    servers.wait_until(
        lambda: status_of(env, tmp_path, "dies")["state"] == "interrupted", 60, "interrupted"
    )
    _, line = replicator(env, tmp_path, "migrate", "status", "dies")
    assert "state=interrupted" in line and "phase=backfill" in line, line
    code, output = replicator(env, tmp_path, "migrate", "stop", "dies")
    assert code == 2 and error_lines(output) == [
        "error: migration dies is not running (state=interrupted): nothing to stop"
    ], output

    code, output, second_ran = timed_run(env, tmp_path, *args)
    assert code == 0, output
    assert "dies was interrupted at backfill: preflight again, then continue at backfill" in output
    report = ready_line(output)
    assert report["items_copied"] == 3000
    assert sum(report["seconds"].values()) <= first_ran + second_ran, report["seconds"]


def _fresher(now: dict[str, Any], before: dict[str, Any]) -> bool:
    return bool(now["phase"] == "backfill" and now["updated"] > before["updated"])


def test_stop_of_a_migration_that_does_not_run_exits_2_with_one_line(
    env: dict[str, str], moto_url: str, start_worker: Any, tmp_path: Path
) -> None:
    create_table(moto_url, "source", stream="KEYS_ONLY")
    load(moto_url, "source", 10)
    start_worker(concurrency=2)
    args = [f"{moto_url}/source", f"{moto_url}/target", "--create", "--verify", "sample:1"]
    code, output, _ = timed_run(env, tmp_path, *args, "--exit-when-ready", "--name", "done")
    assert code == 0, output
    assert status_of(env, tmp_path, "done")["state"] == "stopped"

    code, output = replicator(env, tmp_path, "migrate", "stop", "done")

    assert (code, output.strip()) == (
        2,
        "error: migration done is not running (state=stopped): nothing to stop",
    )


def test_forget_refuses_a_running_migration_and_a_rerun_resumes_the_tail(
    env: dict[str, str], moto_url: str, start_worker: Any, tmp_path: Path
) -> None:
    create_table(moto_url, "source", stream="KEYS_ONLY")
    load(moto_url, "source", 30)
    start_worker(concurrency=2)
    args = [f"{moto_url}/source", f"{moto_url}/target", "--create", "--verify", "sample:1"]
    args += ["--name", "live"]
    command = migrate(env, tmp_path, *args)
    servers.wait_until(lambda: '"phase": "ready"' in command.output(), 120, "ready")
    first_line = command.output().splitlines()[0]
    assert first_line.startswith("[migrate] live: ") and (
        "replicator migrate status live" in first_line
        and "replicator migrate stop live" in first_line
    ), first_line

    code, output = replicator(env, tmp_path, "migrate", "forget", "live")
    assert code == 2 and error_lines(output) == [
        "error: migration live is ready: stop it first (replicator migrate stop live)"
    ], output
    code, output = replicator(env, tmp_path, "migrate", "stop", "live")
    assert code == 0, output
    assert command.process.wait(30) == 0, command.output()
    assert status_of(env, tmp_path, "live")["state"] == "stopped"

    rerun = migrate(env, tmp_path, *args)  # a stopped migration: its tail resumes
    servers.wait_until(lambda: '"phase": "ready"' in rerun.output(), 120, "ready again")
    assert "live was stopped at ready: every phase is done" in rerun.output()
    assert "resume the tail from its checkpoints" in rerun.output()
    assert status_of(env, tmp_path, "live")["state"] == "ready"
    assert rerun.terminate() == 0, rerun.output()

    code, output = replicator(env, tmp_path, "migrate", "forget", "live")
    assert (code, output.strip()) == (0, "forgot migration live")
    code, output = replicator(env, tmp_path, "migrate", "status", "live")
    assert code == 2 and error_lines(output) == ["error: no migration named 'live'"], output
    assert "migrate:live" not in producers_watched()


def test_the_lag_shown_is_the_one_replicator_status_shows(
    env: dict[str, str], moto_url: str, start_worker: Any, tmp_path: Path
) -> None:
    create_table(moto_url, "source", stream="KEYS_ONLY")
    load(moto_url, "source", 50)  # written before the capture: the tail replays them
    start_worker(concurrency=2)
    args = [f"{moto_url}/source", f"{moto_url}/target", "--create", "--verify", "sample:1"]
    command = migrate(env, tmp_path, *args, "--name", "lagged")
    servers.wait_until(lambda: '"phase": "ready"' in command.output(), 120, "ready")
    # The replay of changes made before the capture is no replication lag.
    assert "lag_ms_p50" not in target_status(env, tmp_path, moto_url)
    assert status_of(env, tmp_path, "lagged")["lag_ms_p50"] is None

    ddb = client(moto_url)
    for i in range(20):
        ddb.put_item(TableName="source", Item={"id": {"S": f"new{i:02d}"}})
    servers.wait_until(
        lambda: len([k for k in scan_all(moto_url, "target") if "new" in k]) == 20, 60, "new"
    )
    # Both read the samples at about the same moment: equal once the last samples landed.
    servers.wait_until(lambda: same_lag(env, tmp_path, moto_url), 30, "the same lag in both")
    assert command.terminate() == 0, command.output()


def same_lag(env: dict[str, str], tmp_path: Path, moto_url: str) -> bool:
    summary = target_status(env, tmp_path, moto_url)
    shown = status_of(env, tmp_path, "lagged")
    both = [(s.get("lag_ms_p50"), s.get("lag_ms_p99")) for s in (summary, shown)]
    return both[0][0] is not None and both[0] == both[1]


def target_status(env: dict[str, str], tmp_path: Path, moto_url: str) -> dict[str, Any]:
    """``replicator status TARGET``'s JSON line."""
    code, output = replicator(env, tmp_path, "status", f"{moto_url}/target")
    assert code == 0, output
    (line,) = [text for text in output.splitlines() if text.startswith("{")]
    return dict(json.loads(line))


def test_a_phase_that_fails_leaves_a_failed_record_with_the_reason(
    env: dict[str, str], moto_url: str, tmp_path: Path
) -> None:
    create_table(moto_url, "source", stream="KEYS_ONLY")
    load(moto_url, "source", 10)
    args = [f"{moto_url}/source", f"{moto_url}/target", "--create", "--pickup-timeout", "1"]

    code, output, _ = timed_run(env, tmp_path, *args, "--name", "alone")  # no worker runs

    assert code == 3, output
    (error,) = error_lines(output)
    record = status_of(env, tmp_path, "alone")
    assert (record["phase"], record["state"]) == ("backfill", "failed")
    assert "no worker consumes the 'bulk' queue" in record["reason"]
    assert error == f"error: {record['reason']}"


def test_verify_tells_live_writes_from_what_the_backfill_missed(
    env: dict[str, str], moto_url: str, start_worker: Any, tmp_path: Path
) -> None:
    create_table(moto_url, "source", stream="KEYS_ONLY")
    create_table(moto_url, "target")
    load(moto_url, "source", 200)
    ddb = client(moto_url)
    for i in range(2):  # only on TARGET: the verify finds them, and no write explains them
        ddb.put_item(TableName="target", Item={"id": {"S": f"planted-{i}"}})
    start_worker(concurrency=1, queues="bulk")
    replication = start_worker(concurrency=1, queues="replication")
    args = [f"{moto_url}/source", f"{moto_url}/target", "--exit-when-ready", "--name", "v"]
    command = migrate(env, tmp_path, *args)
    servers.wait_until(lambda: "[migrate] verify\n" in command.output(), 120, "verify")
    replication.freeze()  # the writes below stay in flight while the verify scans
    for i in range(40):
        ddb.put_item(TableName="source", Item={"id": {"S": f"live{i:02d}"}})

    assert command.process.wait(180) == 0, command.output()
    replication.thaw()
    report = ready_line(command.output())
    assert report["discrepancies_missed"] == 2, report
    assert report["discrepancies_live_writes"] > 0, report
    assert report["discrepancies_found"] == 2 + report["discrepancies_live_writes"], report
    assert report["discrepancies_repaired"] == report["discrepancies_found"], report


def test_a_replayed_change_keeps_its_change_time_in_the_backup(
    env: dict[str, str], moto_url: str, start_worker: Any, tmp_path: Path
) -> None:
    s3 = make_bucket(moto_url)
    create_table(moto_url, "source", stream="KEYS_ONLY")
    early = {"id": {"S": "early"}}
    client(moto_url).put_item(TableName="source", Item=early)  # before the capture
    start_worker(concurrency=2)
    args = [f"{moto_url}/source", f"{moto_url}/target", "--create", "--verify", "sample:1"]
    args += ["--backup", "s3://backups/moved", "--name", "kept"]
    command = migrate(env, tmp_path, *args)
    servers.wait_until(lambda: '"phase": "ready"' in command.output(), 120, "ready")
    folder = table_folder(parse_s3("s3://backups/moved"), "source")
    name = object_key(folder, Key.of(early))
    servers.wait_until(lambda: _stored(s3, name), 30, "the backed-up version")

    metadata = s3.head_object(Bucket="backups", Key=name)["Metadata"]
    captured_at = status_of(env, tmp_path, "kept")["captured_at"]
    assert 0 < int(metadata[CHANGE_TIME]) / 1000 <= captured_at, metadata
    assert "lag_ms_p50" not in target_status(env, tmp_path, moto_url)  # yet no lag sample
    assert command.terminate() == 0, command.output()


def _stored(s3: Any, name: str) -> bool:
    listed = s3.list_objects_v2(Bucket="backups", Prefix=name)
    return bool(listed.get("KeyCount"))
