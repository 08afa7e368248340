"""Logging for worker processes: structlog, configured from Celery's setup_logging signal."""

from __future__ import annotations

import logging
from typing import Any

import structlog
from celery.signals import setup_logging, task_postrun, task_prerun

from tasks.core import logs


@setup_logging.connect
def _configure(loglevel: Any = None, **_: Any) -> None:
    """Celery passes the --loglevel it was started with (a name or a number)."""
    if isinstance(loglevel, int):
        loglevel = logging.getLevelName(loglevel)
    logs.configure(level=str(loglevel or "info").lower())


@task_prerun.connect
def _bind_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """Every line logged while a task runs carries its id and name."""
    structlog.contextvars.bind_contextvars(task_id=task_id, task=getattr(task, "name", None))


@task_postrun.connect
def _unbind_task(**_: Any) -> None:
    structlog.contextvars.unbind_contextvars("task_id", "task")
