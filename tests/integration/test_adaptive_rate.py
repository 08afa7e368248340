"""A bulk job's rate adapts to the throttling of its table: halves, grows back slowly, never
above the rate asked for (``tasks.coord.ratelimit``), with real Redis and a throttling proxy."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import redis

from tasks.coord import stats
from tasks.coord.ratelimit import FLOOR_SHARE, RateLimiter
from tasks.core.config import settings
from tasks.core.locations import REPLICA
from tests.integration.test_backup_incremental import make_bucket, run
from tests.support.faultproxy import Rule
from tests.support.tables import client, create_table, scan_all


def test_the_rate_halves_on_throttling_and_grows_back_to_the_cap(
    env: dict[str, str], redis_client: redis.Redis
) -> None:
    target = settings().table("http://127.0.0.1:1/tbl", REPLICA)
    limiter = RateLimiter(redis_client, "adaptive", 1000, watch=target)
    bucket, field = settings().key("rate", "adaptive"), stats.throttle_field(target)

    def throttled() -> None:  # what a worker's flush of throttling events does
        redis_client.hincrby(stats.throttles_name(), field, 1)

    limiter.take(1)
    assert limiter.current == 1000
    throttled()
    limiter.take(1)
    assert limiter.current == 500
    throttled()  # the same burst: within a second of the cut
    limiter.take(1)
    assert limiter.current == 500
    time.sleep(1.05)
    throttled()
    limiter.take(1)
    assert limiter.current == 250
    redis_client.hset(bucket, mapping={"rate": 25, "cut": 0})
    throttled()
    limiter.take(1)
    assert limiter.current == 1000 * FLOOR_SHARE  # never below the floor
    time.sleep(1.1)  # a calm second
    limiter.take(1)
    assert 1000 * FLOOR_SHARE < limiter.current < 1000
    redis_client.hset(bucket, "rate", 990)
    time.sleep(1.1)
    limiter.take(1)
    assert limiter.current == 1000  # never above the rate asked for


def test_a_restore_against_an_endpoint_throttling_every_third_write_slows_and_finishes(
    env: dict[str, str], moto_url: str, fault_proxy: Any, redis_client: redis.Redis
) -> None:
    create_table(moto_url, "source")
    ddb = client(moto_url)
    for start in range(0, 600, 25):
        rows = [
            {"PutRequest": {"Item": {"id": {"S": f"k{i:05}"}}}} for i in range(start, start + 25)
        ]
        ddb.batch_write_item(RequestItems={"source": rows})
    make_bucket(moto_url, "dumps", versioned=False)
    dumped = run(env, "backup-table", f"{moto_url}/source", "s3://dumps/d", "--jobid", "j")
    assert dumped.returncode == 0, dumped.stderr
    create_table(moto_url, "target")
    fault_proxy.add_rule(Rule("BatchWriteItem", action="throttle", every=3, table="target"))

    target = f"{fault_proxy.url}/target"
    done = run(
        env,
        "restore-table",
        "s3://dumps/d/j",
        target,
        "--rate",
        "400",
        "--progress-interval",
        "0.5",
    )

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert (summary["restored"], summary.get("failed", 0)) == (600, 0)
    assert len(scan_all(moto_url, "target")) == 600
    rate = float(redis_client.hget(settings().key("rate", summary["job"]), "rate") or 0)
    assert 0 < rate < 400  # it slowed down
    caps = [float(c) for c in re.findall(r"rate cap (\d+)/s", done.stderr)]
    assert caps and min(caps) < 400  # and the progress lines said so
    assert fault_proxy.counts("BatchWriteItem", "target").injected > 0
