"""Logging for worker processes: structlog, configured from Celery's setup_logging signal."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import setup_logging

from tasks import logs


@setup_logging.connect
def _configure(loglevel: Any = None, **_: Any) -> None:
    """Celery passes the --loglevel it was started with (a name or a number)."""
    if isinstance(loglevel, int):
        loglevel = logging.getLevelName(loglevel)
    logs.configure(level=str(loglevel or "info").lower())
