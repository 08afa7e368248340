"""Usage errors of the backup and restore commands: one line, exit 2, before any AWS call."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from commands import backup_table, incremental_backfill, incremental_snapshot, restore_table

CASES = [
    (
        backup_table.main,
        ["us-east-1/table1", "s3://bucket/p", "--segment", "3", "--segments", "2"],
        "--segment must be between 0 and 1",
    ),
    (
        incremental_backfill.main,
        ["us-east-1/table1", "s3://bucket/p", "--segment", "0"],
        "--segment I needs --segments N",
    ),
    (backup_table.main, ["us-east-1/table1", "bucket/p"], "invalid S3 location"),
    (restore_table.main, ["s3:/bucket", "us-east-1/table1"], "invalid S3 location"),
    (
        restore_table.main,
        ["s3://bucket/p", "us-east-1/table1", "--key", '{"id":"a"}'],
        "give --at TIME too",
    ),
    (
        restore_table.main,
        ["s3://bucket/p", "nowhere", "--at", "2026-01-01T00:00:00Z"],
        "invalid table location",
    ),
    (incremental_snapshot.main, ["s3://bucket/p/table1", "s3://UPPER/x"], "is not a bucket name"),
]


@pytest.mark.parametrize(("command", "args", "message"), CASES)
def test_usage_errors(
    command: object, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICATOR_REDIS_URL", "redis://127.0.0.1:1/0")
    result = CliRunner().invoke(command, args)  # type: ignore[arg-type]

    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
