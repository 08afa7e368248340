"""The Celery app every process shares."""

from __future__ import annotations

from celery import Celery

from worker import logging as _logging  # noqa: F401 - connects the setup_logging signal
from worker import metrics as _metrics  # noqa: F401 - metrics endpoint and counters (signals)
from worker.settings import CONFIG

TASK_MODULES = ["tasks.per_key", "tasks.segments"]

app = Celery("dynamodb-replicator", include=TASK_MODULES)
app.conf.update(CONFIG)
