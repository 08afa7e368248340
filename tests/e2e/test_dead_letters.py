"""`replicator dead-letters`: keys that failed for good are listed with reason and age, replayed
once the cause is fixed, or purged; with a real worker and moto."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tasks.coord import deadletters
from tasks.coord.redis_conn import connection
from tests.support.rabbitmq import BOTH_BROKERS
from tests.support.servers import ROOT, celery_client, wait_until
from tests.support.tables import client, create_table, scan_all

pytestmark = BOTH_BROKERS


def replicator(env: dict[str, str], *args: str, stdin: str = "") -> Any:
    return subprocess.run(
        [sys.executable, "-c", "from commands.replicator import main; main()", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def listed(env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    result = replicator(env, "dead-letters", "list", "--json", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_dead_letters_list_replay_and_purge(
    env: dict[str, str], moto_url: str, start_worker: Any
) -> None:
    create_table(moto_url, "primary")
    ddb = client(moto_url)
    for i in range(3):
        ddb.put_item(TableName="primary", Item={"id": {"S": f"k{i}"}, "v": {"N": str(i)}})
    primary, replica = f"{moto_url}/primary", f"{moto_url}/replica"
    start_worker(concurrency=1)

    # The replica does not exist yet: a permanent failure, dead-lettered at once with its reason.
    keys = [{"id": {"S": f"k{i}"}} for i in range(3)]
    with celery_client(env) as app:
        app.send_task("replicate", args=(primary, replica, keys))
    wait_until(lambda: len(listed(env)) == 3, 60, "three dead letters", interval=0.3)
    entries = listed(env)
    assert {e["key"]["id"]["S"] for e in entries} == {"k0", "k1", "k2"}
    assert all(e["target"] == replica and "does not exist" in e["reason"] for e in entries)
    assert all(0 <= e["age_seconds"] < 120 for e in entries)
    text = replicator(env, "dead-letters", "list").stdout.splitlines()
    assert text[-1] == "[dead-letters] 3"
    assert all(" age=" in line and " reason=" in line for line in text[:-1])
    assert listed(env, "--target", f"{moto_url}/other") == []

    dry = replicator(env, "dead-letters", "replay", "--dry-run")
    assert (
        dry.returncode == 0 and f"[would-replay] 3 replicate {primary} -> {replica}" in dry.stdout
    )
    assert len(listed(env)) == 3

    # The cause fixed, a replay brings the replica up to date and empties the list.
    create_table(moto_url, "replica")
    replay = replicator(env, "dead-letters", "replay", "--target", replica)
    assert replay.returncode == 0 and "[replayed] 3" in replay.stdout, replay.stderr
    wait_until(lambda: len(scan_all(moto_url, "replica")) == 3, 60, "the replayed keys")
    assert listed(env) == []

    # Purge asks first; --yes drops.
    deadletters.record(
        connection(), "replicate", primary, replica, {'{"id":{"S":"gone"}}': "planted"}, attempts=5
    )
    refused = replicator(env, "dead-letters", "purge", stdin="n\n")
    assert refused.returncode != 0 and len(listed(env)) == 1
    purged = replicator(env, "dead-letters", "purge", "--yes")
    assert purged.returncode == 0 and "[purged] 1" in purged.stdout
    assert listed(env) == []


def test_dead_letters_without_redis_is_one_clear_error(env: dict[str, str]) -> None:
    unreachable = {**env, "REPLICATOR_REDIS_URL": "redis://127.0.0.1:1/0"}
    result = replicator(unreachable, "dead-letters", "list")
    assert result.returncode == 3
    assert "127.0.0.1:1" in result.stderr and "Traceback" not in result.stderr
