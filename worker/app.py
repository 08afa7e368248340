"""The Celery app every process shares."""

from __future__ import annotations

import sys
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init

from tasks.aws import clients
from tasks.coord.redis_conn import check
from tasks.core import collector, logs
from tasks.core.config import settings
from tasks.core.errors import ConfigurationError, ReplicatorError, UnavailableError
from tasks.replication import warmup
from worker import logging as _logging  # noqa: F401 - connects the setup_logging signal
from worker import metrics as _metrics  # noqa: F401 - metrics endpoint and counters (signals)
from worker.settings import celery_config
from worker.visibility import RenewVisibility

TASK_MODULES = ["tasks.per_key", "tasks.segments"]

app = Celery("dynamodb-replicator", include=TASK_MODULES)
app.conf.update(celery_config(settings()))  # this process's settings when it imports the app
app.steps["consumer"].add(RenewVisibility)


@worker_init.connect
def _check_servers(**_: Any) -> None:
    """The main process, before it connects: a broker or Redis that refuses this worker's
    certificate check or password ends it (exit 2, the cause in its log; no retry mends that);
    one that does not answer yet is logged, and Celery keeps trying."""
    try:
        check(celery=True)
    except ConfigurationError as exc:
        logs.get("worker").error("cannot connect", error=str(exc))
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
    except UnavailableError as exc:
        logs.get("worker").warning("not reachable yet; retrying", error=str(exc))


@worker_init.connect
def _preload(**_: Any) -> None:
    """The main process, before it starts the pool: sessions and service models loaded once,
    inherited by every pool process."""
    try:
        clients.preload()
    except ReplicatorError as exc:  # a bad profile, say: the first task reports it
        logs.get("worker").warning("AWS sessions not preloaded", error=str(exc))


@worker_process_init.connect
def _start_process(**_: Any) -> None:
    """Each pool process, once started: fewer, cheaper garbage collections (core.collector),
    then clients and table descriptions for the tables replication used lately."""
    collector.tune()
    warmup.start()
