"""`diff-tables` as a user runs it: a subprocess, and click's CliRunner."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from commands import diff_tables
from tests.integration.test_diff_tables import fill, known_difference
from tests.support.rabbitmq import BOTH_BROKERS
from tests.support.servers import ROOT
from tests.support.tables import create_table

DIFF_TABLES = str(ROOT / ".venv" / "bin" / "diff-tables")


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DIFF_TABLES, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_reports_tags_summary_and_report_file(
    env: dict[str, str], ddb_url: str, tmp_path: Path
) -> None:
    primary, replica = known_difference(ddb_url)
    report = tmp_path / "report.jsonl"

    done = run(env, primary, replica, "--report", str(report))

    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert sorted(lines[:3]) == [
        '[different] {"h":{"S":"h1"},"r":{"S":"r2"}}',
        '[extraneous] {"h":{"S":"h1"},"r":{"S":"r3"}}',
        '[missing] {"h":{"S":"h1"},"r":{"S":"r1"}}',
    ]
    assert lines[3] == "[discrepancies] 3"
    summary = json.loads(lines[4])
    assert (summary["missing"], summary["extraneous"], summary["different"]) == (1, 1, 1)
    assert summary["compared"] == 4 and summary["mode"] == "local"
    assert "[progress]" in done.stderr and "Traceback" not in done.stderr
    entries = [json.loads(line) for line in report.read_text().splitlines()]
    assert {(e["kind"], e["key"]["r"]["S"], e["primary"], e["replica"]) for e in entries} == {
        ("missing", "r1", "present", "absent"),
        ("different", "r2", "present", "present"),
        ("extraneous", "r3", "absent", "present"),
    }


def test_repair_exits_0_and_a_rerun_finds_nothing(env: dict[str, str], ddb_url: str) -> None:
    primary, replica = known_difference(ddb_url)

    repaired = run(env, primary, replica, "--repair", "--local")  # the original's flag, accepted
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert json.loads(repaired.stdout.splitlines()[-1])["repaired"] == {
        "missing": 1,
        "extraneous": 1,
        "different": 1,
    }

    again = run(env, primary, replica)
    assert again.returncode == 0
    assert again.stdout.splitlines()[0] == "[discrepancies] 0"


def test_bad_input_is_one_line_and_exit_2(env: dict[str, str], moto_url: str) -> None:
    create_table(moto_url, "primary", ("id", "S"))
    create_table(moto_url, "other", ("pk", "S"))
    primary = f"{moto_url}/primary"
    cases: list[tuple[list[str], str]] = [
        (["nowhere", primary], "invalid table location"),
        ([primary, f"{moto_url}/missing-table"], "does not exist"),
        ([primary, f"{moto_url}/other"], "key schemas differ"),
        ([primary, primary, "--segment", "1"], "needs --segments"),
        ([primary, primary, "--segment", "4", "--segments", "4"], "between 0 and 3"),
        ([primary, primary, "--segments", "0"], "at least 1"),
        ([primary, primary, "--segments", "-3"], "at least 1"),
    ]
    runner = CliRunner()
    for args, message in cases:
        result = runner.invoke(diff_tables.main, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output, args


def test_fan_out_without_a_reachable_broker_exits_3(env: dict[str, str], moto_url: str) -> None:
    create_table(moto_url, "primary")
    dead = "redis://127.0.0.1:1/0"
    done = run(
        {**env, "REPLICATOR_REDIS_URL": dead, "CELERY_BROKER_URL": dead},
        f"{moto_url}/primary",
        f"{moto_url}/primary",
        "--segments",
        "2",
    )
    assert done.returncode == 3
    assert "unreachable" in done.stderr and "--segment I --segments N" in done.stderr
    assert "Traceback" not in done.stderr


@BOTH_BROKERS
def test_fan_out_with_no_worker_exits_3(env: dict[str, str], moto_url: str) -> None:
    create_table(moto_url, "primary")
    done = run(
        env,
        f"{moto_url}/primary",
        f"{moto_url}/primary",
        "--segments",
        "2",
        "--pickup-timeout",
        "1",
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "no worker" in done.stderr and "--segment I --segments N" in done.stderr


def test_one_segment_here_and_no_broker_needed(env: dict[str, str], moto_url: str) -> None:
    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    fill(moto_url, "primary", 1000)
    dead = "redis://127.0.0.1:1/0"
    no_redis = {**env, "REPLICATOR_REDIS_URL": dead, "CELERY_BROKER_URL": dead}
    args = (f"{moto_url}/primary", f"{moto_url}/replica")

    one = run(no_redis, *args, "--segment", "3", "--segments", "10")
    every = run(no_redis, *args)

    assert one.returncode == every.returncode == 1, one.stderr + every.stderr
    part, whole = json.loads(one.stdout.splitlines()[-1]), json.loads(every.stdout.splitlines()[-1])
    assert (part["mode"], part["segment"], whole["mode"]) == ("one", 3, "local")
    assert 0 < part["missing"] < 1000 and whole["missing"] == 1000
    assert one.stdout.count("[missing] ") == part["missing"]


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux `script` for a TTY")
def test_a_terminal_gets_one_progress_bar(env: dict[str, str], moto_url: str) -> None:
    primary, replica = known_difference(moto_url)
    command = shlex.join([DIFF_TABLES, primary, replica, "--segments", "2", "--segment", "0"])

    done = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode in (0, 1), done.stdout
    assert "━" in done.stdout and "[progress]" not in done.stdout
    assert "segments 1/1 done" in done.stdout


def test_ignore_attributes_takes_a_list_and_the_old_flag(env: dict[str, str], ddb_url: str) -> None:
    primary, replica = known_difference(ddb_url)  # r2 differs only in v
    for flags in (("--ignore-attributes", "w,v"), ("--ignore-attribute", "v")):
        done = run(env, primary, replica, *flags)
        summary = json.loads(done.stdout.splitlines()[-1])
        assert (summary["missing"], summary["extraneous"], summary["different"]) == (1, 1, 0)
    plain = json.loads(run(env, primary, replica).stdout.splitlines()[-1])
    assert plain["different"] == 1
