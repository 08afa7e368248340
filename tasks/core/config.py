"""One frozen settings object, built once from the environment plus flags (flags win).

Every tunable the domain code reads lives here; nothing else calls ``os.getenv``. Problems are
collected and reported together in one ConfigurationError.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from typing import Any

from tasks.core.errors import ConfigurationError

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SIDES = ("primary", "replica", "s3")


@dataclass(frozen=True)
class SideCredentials:
    """How one side (primary, replica, s3) authenticates: a profile and/or a role to assume."""

    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class Settings:
    redis_url: str = DEFAULT_REDIS_URL
    namespace: str = "replicator"
    default_region: str = "us-east-1"
    credentials: Mapping[str, SideCredentials] = field(default_factory=dict)
    # botocore's own retries (standard mode) for throttling and 5xx, per request
    aws_max_attempts: int = 8
    aws_connect_timeout: float = 5.0
    aws_read_timeout: float = 30.0
    # our retries of UnprocessedKeys / UnprocessedItems inside one task
    batch_max_attempts: int = 8
    backoff_base: float = 0.05
    backoff_cap: float = 5.0
    # The one retry policy of every task (tasks.core.retry): attempts of a failing key before it
    # is dead-lettered, the countdown between attempts, and how long a segment may keep failing
    # without progress before it is marked failed
    task_max_attempts: int = 5
    task_backoff_base: float = 1.0
    task_backoff_cap: float = 60.0
    segment_retry_window: float = 60.0
    # how many read-write rounds a key gets when another task touched it meanwhile
    guard_max_rounds: int = 5
    # keys per replicate message (BatchGetItem takes 100)
    keys_per_message: int = 100
    # seconds after which a key marked pending (waiting in the queue) may be enqueued again
    pending_ttl: float = 300.0

    def side(self, name: str) -> SideCredentials:
        return self.credentials.get(name, SideCredentials())

    def key(self, *parts: str) -> str:
        """A Redis key in the project's namespace."""
        return ":".join((self.namespace, *parts))

    def with_overrides(self, **overrides: Any) -> Settings:
        values = {k: v for k, v in overrides.items() if v is not None}
        return _validated(replace(self, **values))


_INT_FIELDS = {
    "aws_max_attempts": "REPLICATOR_AWS_MAX_ATTEMPTS",
    "batch_max_attempts": "REPLICATOR_BATCH_MAX_ATTEMPTS",
    "task_max_attempts": "REPLICATOR_TASK_MAX_ATTEMPTS",
    "guard_max_rounds": "REPLICATOR_GUARD_MAX_ROUNDS",
    "keys_per_message": "REPLICATOR_KEYS_PER_MESSAGE",
}
_FLOAT_FIELDS = {
    "aws_connect_timeout": "REPLICATOR_AWS_CONNECT_TIMEOUT",
    "aws_read_timeout": "REPLICATOR_AWS_READ_TIMEOUT",
    "backoff_base": "REPLICATOR_BACKOFF_BASE",
    "backoff_cap": "REPLICATOR_BACKOFF_CAP",
    "task_backoff_base": "REPLICATOR_TASK_BACKOFF_BASE",
    "task_backoff_cap": "REPLICATOR_TASK_BACKOFF_CAP",
    "segment_retry_window": "REPLICATOR_SEGMENT_RETRY_WINDOW",
    "pending_ttl": "REPLICATOR_PENDING_TTL",
}


def from_env(env: Mapping[str, str]) -> Settings:
    """Build settings from an environment mapping; raise one error listing every problem."""
    problems: list[str] = []
    values: dict[str, Any] = {
        "redis_url": env.get("REPLICATOR_REDIS_URL")
        or env.get("CELERY_BROKER_URL")
        or DEFAULT_REDIS_URL,
        "namespace": env.get("REPLICATOR_NAMESPACE", "replicator"),
        "default_region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        "credentials": {
            side: SideCredentials(
                profile=env.get(f"REPLICATOR_{side.upper()}_PROFILE") or None,
                role_arn=env.get(f"REPLICATOR_{side.upper()}_ROLE_ARN") or None,
                external_id=env.get(f"REPLICATOR_{side.upper()}_EXTERNAL_ID") or None,
            )
            for side in SIDES
        },
    }
    for name, var in {**_INT_FIELDS, **_FLOAT_FIELDS}.items():
        if env.get(var):
            kind = int if name in _INT_FIELDS else float
            try:
                values[name] = kind(env[var])
            except ValueError:
                problems.append(f"{var}={env[var]!r} is not a number")
    if problems:
        raise ConfigurationError("; ".join(problems))
    return _validated(Settings(**values))


def _validated(settings: Settings) -> Settings:
    problems = [
        f"{f.name} must be positive"
        for f in fields(settings)
        if f.type in ("int", "float") and getattr(settings, f.name) <= 0
    ]
    if not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        problems.append(f"the Redis URL {settings.redis_url!r} must start with redis://")
    if not 1 <= settings.keys_per_message <= 100:
        problems.append("keys_per_message must be between 1 and 100")
    for base, cap in (("backoff_base", "backoff_cap"), ("task_backoff_base", "task_backoff_cap")):
        if getattr(settings, base) > getattr(settings, cap):
            problems.append(f"{base} must not exceed {cap}")
    if problems:
        raise ConfigurationError("; ".join(problems))
    return settings


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process's settings: installed by a command, or read from the environment once."""
    return _installed[-1] if _installed else from_env(os.environ)


def install(value: Settings) -> None:
    """Make ``value`` the process's settings (commands call this once, after parsing flags)."""
    settings.cache_clear()
    _installed.clear()
    _installed.append(value)


_installed: list[Settings] = []
