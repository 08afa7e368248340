"""A worker's pool process gets ready before its first task: clients built, tables described.

Replication tasks note the tables they use (``tasks.coord.tables``); a new pool process builds
the clients of the most recent ones, reads their descriptions (key schema, stream) and so opens
its first connections, instead of doing all that in its first task. It runs in a thread of its
own, started from ``worker_process_init`` (``worker/app.py``): Celery gives a new pool process a
few seconds to report that it is up, and a slow or unreachable endpoint must not delay that. A
task that arrives meanwhile builds what it needs itself, as before.
"""

from __future__ import annotations

import threading
import time

import redis

from tasks.aws import dynamo
from tasks.coord import tables
from tasks.coord.redis_conn import connection
from tasks.core import logs
from tasks.core.locations import Table

log = logs.get("worker")


def start() -> threading.Thread:
    """Get ready in a background thread; returns the thread."""
    thread = threading.Thread(target=warm, name="warm-up", daemon=True)
    thread.start()
    return thread


def warm() -> list[Table]:
    """Describe the tables replication used lately (building their clients); the ones ready."""
    began = time.monotonic()
    try:
        recent = tables.recent(connection())
    except redis.RedisError as exc:
        log.warning("warm-up skipped: Redis is unreachable", error=str(exc))
        return []
    ready = []
    for table in recent:
        try:
            dynamo.describe(table)
        except Exception as exc:  # a warm-up never fails: the task will say what is wrong
            log.info("warm-up: table skipped", table=str(table), error=str(exc))
            continue
        ready.append(table)
    seconds = round(time.monotonic() - began, 3)
    log.info("worker process ready", tables=[str(t) for t in ready], seconds=seconds)
    return ready
