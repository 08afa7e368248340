"""The process's Redis connection (coordination state: tickets, pending marks, dead letters)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

import redis

from tasks.coord import reach
from tasks.core import config
from tasks.core.config import settings

_lock = threading.Lock()
_client: redis.Redis | None = None


def _forget() -> None:
    global _client  # noqa: PLW0603 - one connection pool per process
    _client = None


os.register_at_fork(after_in_child=_forget)
config.on_change(_forget)


def connection() -> redis.Redis:
    """A Redis client for the configured URL, created once per process."""
    global _client  # noqa: PLW0603
    with _lock:
        if _client is None:
            _client = reach.redis_client(
                settings().redis,
                socket_timeout=10,
                socket_connect_timeout=5,
                health_check_interval=30,
                retry_on_timeout=True,
            )
        return _client


def check(celery: bool = False) -> None:
    """Connect to Redis (and with ``celery`` to the broker and the result backend) once; raise
    ConfigurationError (TLS, password) or UnavailableError naming the server and the cause."""
    reach.check(celery)


def text(value: bytes | str) -> str:
    """A Redis reply as text (replies are bytes unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else value


def texts(row: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """A hash reply as text."""
    return {text(k): text(v) for k, v in row.items()}
