"""Logging for worker processes: structlog, configured from Celery's setup_logging signal."""

from __future__ import annotations

import os
from typing import Any

from celery.signals import setup_logging

from tasks import logs


@setup_logging.connect
def _configure(loglevel: Any = None, **_: Any) -> None:
    level = loglevel if isinstance(loglevel, str) else os.environ.get("REPLICATOR_LOG_LEVEL", "info")
    logs.configure(level=level)
