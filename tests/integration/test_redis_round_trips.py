"""A replicate message costs the same Redis commands whatever its number of keys.

The claims, the release of the pending marks, both checks of the stale-write guard, the counters
and the lag samples of a message go in three scripts (``tasks.coord.guard``). The coordination
Redis here is not the broker, so ``INFO commandstats`` counts the task's own commands only
(commands that a script runs are counted too).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib

from tasks import names
from tasks.coord import pending
from tasks.core.keys import Key
from tests.support import servers
from tests.support.tables import client, create_table

NOT_THE_TASKS = ("config|resetstat", "info", "ping")  # the test's own, and health checks


@pytest.fixture()
def coordination() -> Iterator[redis_lib.Redis]:
    """A Redis for coordination only (the broker stays on the fixtures' Redis)."""
    server = servers.start_redis()
    store = redis_lib.Redis(port=server.port)
    yield store
    store.close()
    server.stop()


def commands(store: redis_lib.Redis) -> dict[str, int]:
    found = store.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(row["calls"])
        for name, row in found.items()
        if name.removeprefix("cmdstat_") not in NOT_THE_TASKS
    }


def test_commands_per_message_do_not_grow_with_its_keys(
    env: dict[str, str], moto_url: str, coordination: redis_lib.Redis, start_worker: Any
) -> None:
    from worker.app import app

    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    ddb = client(moto_url)
    for i in range(102):
        ddb.put_item(TableName="primary", Item={"id": {"S": f"k{i}"}, "v": {"N": str(i)}})
    port = coordination.connection_pool.connection_kwargs["port"]
    worker = start_worker(
        concurrency=1, extra_env={"REPLICATOR_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    )
    primary, replica = (
        f"{moto_url}/primary?region=us-east-1",
        f"{moto_url}/replica?region=us-east-1",
    )
    target = f"{moto_url}/replica"
    done = 0

    def replicate(ids: range) -> dict[str, int]:
        """One message of these keys, marked pending as the producer marks them; the commands
        it cost."""
        nonlocal done
        keys = [Key.of({"id": {"S": f"k{i}"}}) for i in ids]
        pending.mark(coordination, target, "session", [k.id for k in keys])
        coordination.config_resetstat()
        created = [time.time()] * len(keys)
        app.send_task(
            names.REPLICATE,
            args=(primary, replica, [k.wire for k in keys]),
            kwargs={"created": created, "session": "session"},
        )
        done += 1
        servers.wait_until(
            lambda: worker.output().count('"event": "replicate"') == done, 30, "the task"
        )
        return commands(coordination)

    replicate(range(101, 102))  # the first task loads the scripts
    one = replicate(range(0, 1))
    hundred = replicate(range(1, 101))

    assert one == hundred, (one, hundred)
    assert one["evalsha"] == 3  # claim (with the pending marks), check, check + numbers
    assert sum(one.values()) <= 20
    assert ddb.scan(TableName="replica", Select="COUNT")["Count"] == 102
    assert pending.count(coordination, target, "session") == 0  # every mark released


def test_a_scan_page_of_keys_goes_through_the_guard_in_one_call_each(
    env: dict[str, str], redis_client: redis_lib.Redis
) -> None:
    """A backfill or repair syncs a whole scan page (thousands of keys) at once: the scripts
    must not unpack more values than Lua's stack holds."""
    from tasks.coord.guard import StaleWriteGuard, Written
    from tasks.coord.redis_conn import connection

    ids = [f"{i:064x}" for i in range(12_000)]
    guard = StaleWriteGuard(connection(), "big-page")
    release = pending.release("big-page", "session", ids)
    token = guard.claim(ids, release)
    assert guard.contended(ids, token) == []
    other = guard.claim(ids[:5])
    written = Written(ids, [True] * len(ids), [time.time() - 1] * len(ids), len(ids), 0)
    assert guard.settle(token, written) == ids[:5]
    assert guard.contended(ids[:5], other) == []
