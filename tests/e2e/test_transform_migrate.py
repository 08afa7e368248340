"""A live migration through a transform: backfill, tail and verify all hold t(SOURCE item),
under writers whose updates make items stop (and start) matching the filter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.test_backup_incremental import run
from tests.support.migration import Writers, load, migrate, ready_line
from tests.support.servers import wait_until
from tests.support.tables import create_table, scan_all

SHAPE = ["--exclude-attributes", "w", "--filter", "v >= `0`"]


def test_a_migration_through_a_transform_verifies_equal(
    env: dict[str, str], moto_url: str, start_worker: Any, tmp_path: Path
) -> None:
    create_table(moto_url, "source", stream="KEYS_ONLY")
    create_table(moto_url, "target")
    load(moto_url, "source", 400)
    start_worker(concurrency=2)
    writers = Writers(moto_url)
    command = migrate(
        env,
        tmp_path,
        f"{moto_url}/source",
        f"{moto_url}/target",
        *SHAPE,
        "--exit-when-ready",
        "--name",
        "shaped",
    )
    wait_until(lambda: "[migrate] verify" in command.output(), 180, "the verify")
    writers.finish()

    assert command.process.wait(240) == 0, command.output()
    report = ready_line(command.output())
    assert report["transform"] and len(report["transform"]) == 12
    target = scan_all(moto_url, "target")
    assert target and all("w" not in item for item in target.values())
    assert all(int(item["v"]["N"]) >= 0 for item in target.values())

    def agrees() -> bool:
        found = run(env, "diff-tables", f"{moto_url}/source", f"{moto_url}/target", *SHAPE)
        return found.returncode == 0

    wait_until(agrees, 60, "the target equal to t(source) once replication drained")
