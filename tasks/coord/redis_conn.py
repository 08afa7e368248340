"""The process's Redis connection (coordination state: tickets, pending marks, dead letters)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping

import redis

from tasks.core import config
from tasks.core.config import settings
from tasks.core.errors import UnavailableError

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
            _client = redis.Redis.from_url(
                settings().redis_url,
                socket_timeout=10,
                socket_connect_timeout=5,
                health_check_interval=30,
                retry_on_timeout=True,
            )
        return _client


def check() -> None:
    """Raise UnavailableError naming the URL when Redis does not answer."""
    try:
        connection().ping()
    except redis.RedisError as exc:
        url = masked(settings().redis_url)
        raise UnavailableError(f"Redis at {url} is unreachable: {exc}") from exc


def text(value: bytes | str) -> str:
    """A Redis reply as text (replies are bytes unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else value


def texts(row: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """A hash reply as text."""
    return {text(k): text(v) for k, v in row.items()}


def masked(url: str) -> str:
    """The URL with its password replaced by *** (for messages and logs)."""
    return re.sub(r"://([^:@/]*):[^@/]+@", r"://\1:***@", url)
