"""Bulk jobs whose segments fail for a transient reason: retried, shown retrying, then failed
with exit 3 in bounded time, or successful once the fault goes away.

Real processes: Redis, moto behind the fault-injecting proxy, `celery -A worker worker`
processes, and the commands as subprocesses. The retry settings are the shipped defaults here
(the `env` fixture shortens the task backoff for other tests).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Any

import pytest
from botocore.retries import standard

from tasks.coord import stats
from tasks.coord.redis_conn import connection
from tasks.core.config import Settings
from tasks.jobs.model import DONE, FAILED
from tasks.jobs.redis_store import RedisJobStore
from tests.e2e.test_backup_restore import fill, lines_of
from tests.integration.test_backup_incremental import BIN, make_bucket
from tests.support.faultproxy import Rule
from tests.support.rabbitmq import BOTH_BROKERS
from tests.support.tables import create_table

SHIPPED = Settings()
SHIPPED_RETRIES = {
    "REPLICATOR_TASK_BACKOFF_BASE": str(SHIPPED.task_backoff_base),
    "REPLICATOR_TASK_BACKOFF_CAP": str(SHIPPED.task_backoff_cap),
    "REPLICATOR_SEGMENT_RETRY_WINDOW": str(SHIPPED.segment_retry_window),
    "REPLICATOR_AWS_MAX_ATTEMPTS": str(SHIPPED.aws_max_attempts),
}
# Process start-up, the command's checks, a worker taking the segment, a loaded machine.
SLACK = 45.0
FAILED_LINE = re.compile(r"^error: segment (\d) failed: (.*)$", re.MULTILINE)
RETRYING_LINE = re.compile(
    r"^\[progress\] segments \d/2 done .*; retrying: segment \d \(retry \d+: (.*)\)", re.MULTILINE
)


def botocore_backoff_for_errors(retries: int) -> float:
    """botocore's (the installed one's) longest sleeps between the attempts of one DynamoDB
    request that answers HTTP 500 (not throttled), with ``retries`` retries."""
    try:
        backoff = standard.ExponentialBackoff(random=lambda: 1.0, service_name="dynamodb")
    except TypeError:  # older botocore: one scale, 1 s, for every error
        backoff = standard.ExponentialBackoff(random=lambda: 1.0)
    return sum(
        backoff.delay_amount(standard.RetryContext(attempt_number=n)) for n in range(1, retries + 1)
    )


# The documented bound (README, "When a bulk job fails") for an endpoint answering 5xx: the retry
# window, plus the last attempt's botocore retries of its request.
BOUND = SHIPPED.segment_retry_window + botocore_backoff_for_errors(SHIPPED.aws_max_attempts)


def _run_failing(
    env: dict[str, str], command: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [str(BIN / command), *args, "--segments", "2", "--progress-interval", "1"],
        env={**env, **SHIPPED_RETRIES},
        capture_output=True,
        text=True,
        timeout=BOUND + SLACK,
        check=False,
    )
    return done, time.monotonic() - started


def _assert_failed_in_bound(
    done: subprocess.CompletedProcess[str], seconds: float, task: str, redis_client: Any
) -> None:
    """Exit 3 naming both segments and the error; shown retrying on the way; store agrees."""
    assert done.returncode == 3, done.stdout + done.stderr
    failed = dict(FAILED_LINE.findall(done.stderr))
    assert sorted(failed) == ["0", "1"], done.stderr
    assert all("service error 500 InternalServerError" in reason for reason in failed.values())
    retrying = RETRYING_LINE.findall(done.stderr)
    assert retrying and all("InternalServerError" in reason for reason in retrying), done.stderr
    assert "[progress] segments 2/2 done (2 failed) " in done.stderr
    assert "Traceback" not in done.stderr
    assert seconds < BOUND + SLACK
    (job_id,) = {k.decode().split(":")[2] for k in redis_client.keys("replicator:job:*:seg:*")}
    segments = RedisJobStore(connection()).snapshot(job_id).segments
    assert [s.status for s in segments] == [FAILED, FAILED]
    assert all(s.attempt >= 2 and "500" in s.error for s in segments), segments
    # every failure but the last of each segment was sent again, and counted
    assert stats.task_retries(connection()).get(task) == sum(s.attempt - 1 for s in segments)


@BOTH_BROKERS  # each failed attempt is sent again with a countdown
@pytest.mark.timeout(BOUND + SLACK + 60)
def test_backup_table_whose_scans_all_fail_exits_3_within_the_bound(
    env: dict[str, str], moto_url: str, fault_proxy: Any, start_worker: Any, redis_client: Any
) -> None:
    create_table(moto_url, "primary")
    fill(moto_url, "primary", 50)
    make_bucket(moto_url)
    scans = fault_proxy.add_rule(Rule("Scan", action="error"))
    start_worker(concurrency=2, queues="bulk", extra_env=SHIPPED_RETRIES)

    done, seconds = _run_failing(
        env, "backup-table", f"{fault_proxy.url}/primary", "s3://backups/dumps"
    )

    _assert_failed_in_bound(done, seconds, "backup-segment", redis_client)
    assert scans.fired > 2 and fault_proxy.counts("Scan").forwarded == 0
    assert json.loads(done.stdout.splitlines()[-1])["failed_segments"] == 2


@BOTH_BROKERS  # each failed attempt is sent again with a countdown
@pytest.mark.timeout(BOUND + SLACK + 60)
def test_diff_tables_whose_scans_all_fail_exits_3_within_the_bound(
    env: dict[str, str], moto_url: str, fault_proxy: Any, start_worker: Any, redis_client: Any
) -> None:
    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    fault_proxy.add_rule(Rule("Scan", action="error"))
    start_worker(concurrency=2, queues="bulk", extra_env=SHIPPED_RETRIES)

    done, seconds = _run_failing(
        env, "diff-tables", f"{fault_proxy.url}/primary", f"{fault_proxy.url}/replica"
    )

    _assert_failed_in_bound(done, seconds, "diff-segment", redis_client)
    assert json.loads(done.stdout.splitlines()[-1])["failed_segments"].keys() == {"0", "1"}


@BOTH_BROKERS  # the retry is a countdown: on RabbitMQ, Celery's native delayed delivery
def test_a_fault_that_goes_away_is_retried_and_the_backup_succeeds(
    env: dict[str, str], moto_url: str, fault_proxy: Any, start_worker: Any, redis_client: Any
) -> None:
    create_table(moto_url, "primary")
    fill(moto_url, "primary", 200)
    s3 = make_bucket(moto_url)
    # One botocore retry per request: two failed Scans fail an attempt of a segment.
    few_retries = {"REPLICATOR_AWS_MAX_ATTEMPTS": "1"}
    blip = fault_proxy.add_rule(Rule("Scan", action="error", first=4))
    worker = start_worker(concurrency=2, queues="bulk", extra_env=few_retries)

    done = subprocess.run(
        [
            str(BIN / "backup-table"),
            f"{fault_proxy.url}/primary",
            "s3://backups/dumps",
            "--jobid",
            "j",
            "--segments",
            "2",
        ],
        env={**env, **few_retries},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert blip.fired == 4
    items = lines_of(s3, "backups", "dumps/j/0") + lines_of(s3, "backups", "dumps/j/1")
    assert len(items) == 200
    assert stats.task_retries(connection()).get("backup-segment", 0) >= 1
    assert "segment sent again" in worker.output()
    (job_id,) = {k.decode().split(":")[2] for k in redis_client.keys("replicator:job:*:seg:*")}
    segments = RedisJobStore(connection()).snapshot(job_id).segments
    assert [(s.status, s.attempt, s.reason) for s in segments] == [(DONE, 0, "")] * 2
