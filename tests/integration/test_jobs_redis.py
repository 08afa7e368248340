"""The job record's contract on Redis (shared by the command and the workers)."""

from __future__ import annotations

from typing import Any

from tasks.coord.redis_conn import connection
from tasks.jobs.redis_store import RedisJobStore
from tests.unit.test_jobs_memory import contract


def test_redis_store_contract(env: dict[str, str], redis_client: Any) -> None:
    contract(RedisJobStore(connection()))
    assert any(k.startswith(b"replicator:job:") for k in redis_client.keys("*"))
