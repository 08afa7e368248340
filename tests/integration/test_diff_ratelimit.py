"""The --rate token bucket: shared in Redis by every process of a job."""

from __future__ import annotations

from typing import Any

from tasks.coord.ratelimit import RateLimiter
from tasks.coord.redis_conn import connection


def test_readers_share_one_bucket_and_wait_for_its_debt(
    env: dict[str, str], redis_client: Any
) -> None:
    first = RateLimiter(connection(), "job-1", rate=1000)
    second = RateLimiter(connection(), "job-1", rate=1000)  # another worker, same job
    other_job = RateLimiter(connection(), "job-2", rate=1000)

    assert first.take(500) == 0  # within the first second's tokens
    assert second.take(700) > 0  # the bucket is shared: 1200 > 1000, so this one waits
    assert other_job.take(500) == 0  # another job has its own bucket
    assert first.take(0) == 0
