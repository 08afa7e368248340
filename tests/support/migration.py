"""Running ``replicator migrate`` in tests: the command, its record, its output, writers."""

from __future__ import annotations

import json
import random
import sys
import threading
from pathlib import Path
from typing import Any

from tests.support import servers
from tests.support.tables import client

REPLICATOR = str(Path(sys.executable).parent / "replicator")


def migrate(env: dict[str, str], tmp_path: Path, *args: str) -> servers.Command:
    return servers.start_command([REPLICATOR, "migrate", *args], env, tmp_path, "migrate")


def churn(moto_url: str, table: str, ops: int, n_keys: int, seed: int) -> None:
    """Puts (50 %), updates (30 %) and deletes (20 %) of keys k00000..k{n_keys}."""
    ddb, rng = client(moto_url), random.Random(seed)
    for i in range(ops):
        key = {"id": {"S": f"k{rng.randrange(n_keys):05d}"}}
        roll = rng.random()
        if roll < 0.5:
            ddb.put_item(TableName=table, Item={**key, "v": {"N": str(i)}, "w": {"S": "x" * 20}})
        elif roll < 0.8:
            ddb.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="SET v = :v ADD hits :one",
                ExpressionAttributeValues={":v": {"N": str(-i)}, ":one": {"N": "1"}},
            )
        else:
            ddb.delete_item(TableName=table, Key=key)


def ready_line(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith("{") and '"phase": "ready"' in line:
            return dict(json.loads(line))
    raise AssertionError(f"no ready line in:\n{output}")


def load(moto_url: str, table: str, n: int) -> None:
    ddb = client(moto_url)
    for base in range(0, n, 25):
        requests = [
            {"PutRequest": {"Item": {"id": {"S": f"k{i:05d}"}, "v": {"N": str(i)}}}}
            for i in range(base, min(n, base + 25))
        ]
        ddb.batch_write_item(RequestItems={table: requests})


def producers_watched() -> list[str]:
    from producer import status
    from tasks.coord.redis_conn import connection

    return [found.name for found in status.read(connection())]


def migration_record(name: str) -> dict[str, Any]:
    from tasks.coord.redis_conn import connection
    from tasks.core.config import settings

    raw = connection().get(settings().key("migration", name))
    return dict(json.loads(raw)) if raw else {}


def backfilled_so_far(name: str) -> int:
    from tasks.coord.redis_conn import connection
    from tasks.jobs.redis_store import RedisJobStore

    job = migration_record(name).get("backfill_job")
    if not job:
        return 0
    return RedisJobStore(connection()).snapshot(job).totals.get("backfilled", 0)


class Writers:
    """Two threads doing puts, updates and deletes on their own keys until stopped."""

    def __init__(self, moto_url: str) -> None:
        self.stop = threading.Event()
        self.ops = 0
        self.threads = [
            threading.Thread(target=self._run, args=(moto_url, seed), daemon=True)
            for seed in (1, 2)
        ]
        for thread in self.threads:
            thread.start()

    def _run(self, moto_url: str, seed: int) -> None:
        while not self.stop.is_set():
            churn(moto_url, "source", ops=20, n_keys=400, seed=seed + self.ops)
            self.ops += 20

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def replicator(env: dict[str, str], tmp_path: Path, *args: str) -> tuple[int, str]:
    """Run ``replicator ARGS`` to its end: (exit status, stdout and stderr)."""
    command = servers.start_command([REPLICATOR, *args], env, tmp_path, "replicator")
    return command.process.wait(60), command.output()


def status_of(env: dict[str, str], tmp_path: Path, name: str) -> dict[str, Any]:
    """``replicator migrate status NAME --json``, as a dict."""
    code, output = replicator(env, tmp_path, "migrate", "status", name, "--json")
    assert code == 0, output
    return dict(json.loads(output.strip().splitlines()[-1]))


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error: ")]
