"""Metrics for worker processes, wired to Celery's signals.

With ``REPLICATOR_METRICS_PORT`` set, the worker's main process serves ``tasks.metrics.cluster``'s
``RedisCollector`` (cluster-wide counters held in Redis, queue depths from the broker) from
``worker_init``. In the pool processes, every task's end moves the throttling it saw to Redis
(task re-sends are counted where they are sent, ``tasks.resend``).
"""

from __future__ import annotations

import sys
from typing import Any

import redis
from celery.signals import task_postrun, worker_init

from tasks.coord import stats
from tasks.coord.redis_conn import connection
from tasks.core import logs
from tasks.core.config import settings
from tasks.core.errors import ConfigurationError
from tasks.metrics import queues
from tasks.metrics.cluster import RedisCollector
from tasks.metrics.serve import serve
from tasks.names import QUEUES

log = logs.get("worker.metrics")


@worker_init.connect
def _serve(**_: Any) -> None:
    try:
        cfg = settings()
        port, address = cfg.metrics_port, cfg.metrics_address
        if not port:
            return
        counts = queues.reader(cfg.broker, QUEUES)
        serve(port, RedisCollector(connection, counts), address)
    except ConfigurationError as exc:
        log.error("metrics endpoint not started", error=str(exc))
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
    log.info("metrics endpoint started", port=port, path="/metrics")


@task_postrun.connect
def _flush_throttles(**_: Any) -> None:
    try:
        stats.flush_throttles(connection())
    except redis.RedisError as exc:
        log.warning("throttle counters not stored; kept for the next task", error=str(exc))
