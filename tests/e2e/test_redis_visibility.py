"""Redis as broker, shipped settings: a message is delivered again when no live worker holds it.

A bulk segment running longer than ``REPLICATOR_VISIBILITY_TIMEOUT`` (30 s) stays with its worker
(``worker.visibility`` renews what it holds) while a second, idle worker looks for messages to
restore; the kill tests (test_replication_faults.py) show the other half: a dead worker's
messages come back within the timeout plus one sweep.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from tasks.coord.redis_conn import connection
from tasks.core.config import Settings
from tasks.jobs.redis_store import RedisJobStore
from tests.e2e.test_diff_tables_cli import DIFF_TABLES
from tests.integration.test_diff_workers import job_ids, planted
from tests.support.faultproxy import Rule

SHIPPED = Settings()


def test_a_segment_outliving_the_visibility_timeout_is_not_handed_to_another_worker(
    env: dict[str, str], moto_url: str, fault_proxy: Any, start_worker: Any, redis_client: Any
) -> None:
    assert env["CELERY_BROKER_URL"].startswith("redis://")
    expected = planted(moto_url)  # 800 and 800 items: 16 pages of 50 a side
    fault_proxy.add_rule(Rule("Scan", action="delay", delay=3.0))  # about 50 s in all
    start_worker(concurrency=1, queues="bulk")
    start_worker(concurrency=1, queues="bulk")  # it sweeps for messages to restore
    began = time.monotonic()
    done = subprocess.run(
        [
            DIFF_TABLES,
            f"{fault_proxy.url}/primary",
            f"{fault_proxy.url}/replica",
            "--segments",
            "1",
            "--page-size",
            "50",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    took = time.monotonic() - began

    assert done.returncode == 1, done.stdout + done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert {k: summary[k] for k in expected} == expected
    # It ran past the timeout and two sweeps: without renewal the idle worker would have
    # taken the message and run the segment a second time.
    assert took > SHIPPED.visibility_timeout + 2 * SHIPPED.restore_interval
    (job_id,) = job_ids(redis_client)
    (segment,) = RedisJobStore(connection()).snapshot(job_id).segments
    assert segment.deliveries == 1
