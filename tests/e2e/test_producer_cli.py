"""`python -m producer` with bad input: one clear line on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.servers import ROOT, free_port
from tests.support.tables import create_table


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    assert text in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_bad_location(env: dict[str, str]) -> None:
    result = run(env, "--primary", "nowhere", "--replica", "us-east-1/replica")
    assert_one_clear_line(result, 2, "invalid table location 'nowhere'")


def test_no_target_and_half_a_turnover(env: dict[str, str]) -> None:
    result = run(env, "--primary", "us-east-1/a-table", "--turnover-role", "after")
    assert_one_clear_line(result, 2, "--replica LOCATION and/or --backup")
    assert "--turnover-role and --turnover-at go together" in result.stderr


def test_missing_table(env: dict[str, str], moto_url: str) -> None:
    result = run(env, "--primary", f"{moto_url}/missing", "--replica", f"{moto_url}/other")
    assert_one_clear_line(result, 2, f"table {moto_url}/missing does not exist")


def test_stream_not_enabled(env: dict[str, str], moto_url: str) -> None:
    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    result = run(env, "--primary", f"{moto_url}/primary", "--replica", f"{moto_url}/replica")
    assert_one_clear_line(result, 2, "has no stream enabled")


def test_schema_mismatch(env: dict[str, str], moto_url: str) -> None:
    create_table(moto_url, "primary", stream="KEYS_ONLY")
    create_table(moto_url, "replica", ("pk", "N"))
    result = run(env, "--primary", f"{moto_url}/primary", "--replica", f"{moto_url}/replica")
    assert_one_clear_line(result, 2, "key schemas differ")


def test_missing_kinesis_stream(env: dict[str, str], moto_url: str) -> None:
    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    result = run(
        env,
        "--primary",
        f"{moto_url}/primary",
        "--replica",
        f"{moto_url}/replica",
        "--kinesis-stream",
        "nope",
    )
    assert_one_clear_line(result, 2, "Kinesis stream nope does not exist")


@pytest.mark.parametrize("what", ["redis", "endpoint"])
def test_unreachable_services(env: dict[str, str], what: str) -> None:
    dead = f"127.0.0.1:{free_port()}"
    if what == "redis":
        env = {**env, "REPLICATOR_REDIS_URL": f"redis://{dead}/0"}
        result = run(env, "--primary", "us-east-1/primary", "--replica", "us-east-1/replica")
        assert_one_clear_line(result, 3, f"Redis at redis://{dead}/0 is unreachable")
    else:
        env = {**env, "REPLICATOR_AWS_MAX_ATTEMPTS": "1"}
        result = run(env, "--primary", f"{dead}/primary", "--replica", f"{dead}/replica")
        assert_one_clear_line(result, 3, "cannot reach the endpoint")


def test_bad_start_time(env: dict[str, str]) -> None:
    result = run(
        env,
        "--primary",
        "us-east-1/primary",
        "--replica",
        "us-east-1/replica",
        "--start",
        "yesterday",
    )
    assert_one_clear_line(result, 2, "invalid time 'yesterday'")
