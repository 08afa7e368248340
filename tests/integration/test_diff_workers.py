"""diff-tables fanned out over real Celery worker processes (segments on the bulk queue)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any

from tasks.coord.redis_conn import connection
from tasks.jobs.redis_store import RedisJobStore
from tests.e2e.test_diff_tables_cli import DIFF_TABLES, run
from tests.integration.test_diff_tables import fill, known_difference
from tests.support.rabbitmq import BOTH_BROKERS
from tests.support.servers import wait_until
from tests.support.tables import create_table

pytestmark = BOTH_BROKERS


def planted(url: str) -> dict[str, int]:
    """800 primary items; the replica misses 40, has 25 changed and 15 extra."""
    create_table(url, "primary")
    create_table(url, "replica")
    fill(url, "primary", 800)
    fill(url, "replica", 760)  # k00760..k00799 missing
    fill(url, "replica", 25, start=100, value="changed")
    fill(url, "replica", 15, start=5000)
    return {"missing": 40, "different": 25, "extraneous": 15}


def job_ids(redis_client: Any) -> list[str]:
    return sorted({k.decode().split(":")[2] for k in redis_client.keys("replicator:job:*")})


def test_segments_fan_out_to_workers_with_progress_and_results(
    env: dict[str, str], ddb_url: str, start_worker: Any, redis_client: Any
) -> None:
    primary, replica = known_difference(ddb_url)
    start_worker(concurrency=2, queues="bulk")

    done = run(env, primary, replica, "--segments", "3", "--progress-interval", "0.5")

    assert done.returncode == 1, done.stdout + done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert (summary["mode"], summary["segments"]) == ("fanout", 3)
    assert (summary["missing"], summary["different"], summary["extraneous"]) == (1, 1, 1)
    assert "[progress] segments 3/3 done" in done.stderr
    results = [json.loads(redis_client.get(k)) for k in redis_client.keys("celery-task-meta-*")]
    diff_results = [r for r in results if r.get("name") == "diff-segment"]
    assert len(diff_results) == 3 and all(r["status"] == "SUCCESS" for r in diff_results)
    assert sum(r["result"].get("compared", 0) for r in diff_results) == 4


def test_progress_is_visible_in_the_task_state(
    env: dict[str, str], moto_url: str, start_worker: Any, redis_client: Any
) -> None:
    planted(moto_url)
    start_worker(concurrency=1, queues="bulk")
    command = subprocess.Popen(
        [
            DIFF_TABLES,
            f"{moto_url}/primary",
            f"{moto_url}/replica",
            "--segments",
            "1",
            "--page-size",
            "20",
            "--rate",
            "600",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    seen: list[dict[str, Any]] = []

    def progress_shown() -> bool:
        for key in redis_client.keys("celery-task-meta-*"):
            meta = json.loads(redis_client.get(key))
            if meta["status"] == "PROGRESS" and meta["result"].get("scanned", 0) > 0:
                seen.append(meta["result"])
                return True
        return False

    wait_until(progress_shown, 60, "a PROGRESS state with counts")
    assert {"scanned", "compared", "discrepancies", "items_per_second", "segment"} <= set(seen[0])
    out, err = command.communicate(timeout=120)
    assert command.returncode == 1, out + err
    state = next(json.loads(redis_client.get(k)) for k in redis_client.keys("celery-task-meta-*"))
    assert state["status"] == "SUCCESS" and state["name"] == "diff-segment"


def test_worker_killed_mid_segment_still_gives_exact_counts(
    env: dict[str, str], moto_url: str, start_worker: Any, redis_client: Any, fault_proxy: Any
) -> None:
    expected = planted(moto_url)
    worker = start_worker(concurrency=2, queues="bulk")
    command = subprocess.Popen(
        [
            DIFF_TABLES,
            f"{fault_proxy.url}/primary",
            f"{fault_proxy.url}/replica",
            "--segments",
            "2",
            "--page-size",
            "25",
            "--rate",
            "400",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: bool(job_ids(redis_client)), 30, "the job record")
    (job_id,) = job_ids(redis_client)
    store = RedisJobStore(connection())

    def mid_way() -> bool:
        segments = store.snapshot(job_id).segments
        started = any(s.counts.get("scanned", 0) >= 300 for s in segments)
        return started and not any(s.finished for s in segments)

    wait_until(mid_way, 60, "a segment a dozen pages in, none finished")
    running = [i for i, s in enumerate(store.snapshot(job_id).segments) if s.deliveries]
    for pid in worker.pool_pids():
        os.kill(pid, signal.SIGKILL)

    out, err = command.communicate(timeout=120)
    assert command.returncode == 1, out + err
    summary = json.loads(out.splitlines()[-1])
    assert {k: summary[k] for k in expected} == expected
    assert summary["scanned"] == 800 + 775 and summary["compared"] == 815
    after = store.snapshot(job_id).segments
    assert all(after[i].deliveries >= 2 for i in running)
    # resumed from the checkpoint: each table was scanned about once, not once plus a restart
    pages_once = sum(-(-s.counts["scanned"] // 25) for s in after)
    scans = fault_proxy.counts("Scan").forwarded
    assert scans <= pages_once + 4 * 2, (scans, pages_once)
    assert len(out.splitlines()) == sum(expected.values()) + 2  # each discrepancy printed once
