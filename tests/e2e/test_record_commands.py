"""`diff-record` and `replicate-record` on one item, as subprocesses and through CliRunner."""

from __future__ import annotations

import subprocess

import pytest
from click.testing import CliRunner

from commands import diff_record, replicate_record
from tests.integration.test_diff_tables import known_difference
from tests.support.servers import ROOT
from tests.support.tables import scan_all

BIN = ROOT / ".venv" / "bin"


def run(env: dict[str, str], command: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / command), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_diff_record_shows_both_items_and_the_verdict(env: dict[str, str], moto_url: str) -> None:
    primary, replica = known_difference(moto_url)

    different = run(env, "diff-record", primary, replica, '{"h":"h1","r":"r2"}')
    equal = run(env, "diff-record", primary, replica, '{"h":{"S":"h1"},"r":{"S":"r4"}}')

    assert different.returncode == 1, different.stderr
    assert '"N": "2"' in different.stdout and '"N": "20"' in different.stdout
    assert "✘ different: v" in different.stdout
    assert equal.returncode == 0 and "✔" in equal.stdout
    missing = CliRunner().invoke(diff_record.main, [primary, replica, '{"h":"h1","r":"r1"}'])
    assert missing.exit_code == 1 and "(absent)" in missing.output and "✘ missing" in missing.output


def test_replicate_record_puts_then_deletes(env: dict[str, str], moto_url: str) -> None:
    primary, replica = known_difference(moto_url)

    put = run(env, "replicate-record", primary, replica, '{"h":"h1","r":"r1"}')
    assert put.returncode == 0, put.stderr
    assert put.stdout.strip() == '[put] {"h":{"S":"h1"},"r":{"S":"r1"}}'
    deleted = CliRunner().invoke(
        replicate_record.main, [primary, replica, '{"h":{"S":"h1"},"r":{"S":"r3"}}']
    )
    assert deleted.exit_code == 0 and deleted.output.startswith("[deleted]")

    assert run(env, "diff-record", primary, replica, '{"h":"h1","r":"r1"}').returncode == 0
    assert {k for k in scan_all(moto_url, "replica")} == {
        '{"h":{"S":"h1"},"r":{"S":"r1"}}',
        '{"h":{"S":"h1"},"r":{"S":"r2"}}',
        '{"h":{"S":"h1"},"r":{"S":"r4"}}',
    }


@pytest.mark.parametrize("command", [diff_record.main, replicate_record.main])
@pytest.mark.parametrize(
    ("key", "message"),
    [
        ('{"h":"h1"}', "does not match the key schema"),
        ('{"h":"h1","r":"r1","x":"y"}', "not part of the key schema"),
        ('{"h":{"N":"1"},"r":{"S":"r1"}}', "must be of type S"),
        ('{"h":"h1",', "not valid JSON"),
        ('["h1"]', "must be a JSON object"),
    ],
)
def test_bad_key_is_one_line_and_exit_2(
    env: dict[str, str], moto_url: str, command: object, key: str, message: str
) -> None:
    primary, replica = known_difference(moto_url)
    result = CliRunner().invoke(command, [primary, replica, key])  # type: ignore[arg-type]
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
