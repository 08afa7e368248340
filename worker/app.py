"""The Celery app every process shares."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from tasks.core import collector
from worker import logging as _logging  # noqa: F401 - connects the setup_logging signal
from worker import metrics as _metrics  # noqa: F401 - metrics endpoint and counters (signals)
from worker.settings import CONFIG
from worker.visibility import RenewVisibility

TASK_MODULES = ["tasks.per_key", "tasks.segments"]

app = Celery("dynamodb-replicator", include=TASK_MODULES)
app.conf.update(CONFIG)
app.steps["consumer"].add(RenewVisibility)


@worker_process_init.connect
def _tune_collector(**_: Any) -> None:
    """Each pool process, once started: fewer, cheaper garbage collections (core.collector)."""
    collector.tune()
