"""Exit codes (like diff) and the one place where errors become a line on stderr."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import redis
from kombu.exceptions import OperationalError

from tasks.core.errors import (
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    ReplicatorError,
)

OK = 0
DIFFERENT = 1
USAGE = 2
FAILURE = 3

F = TypeVar("F", bound=Callable[..., Any])


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, ConfigurationError | InvalidInputError | NotFoundError):
        return USAGE
    return FAILURE


def handle_errors(func: F) -> F:
    """Turn project errors into one clear line on stderr and an exit code; no tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ReplicatorError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exit_code(exc))
        except (redis.ConnectionError, redis.TimeoutError, OperationalError) as exc:
            click.echo(f"error: Redis is unreachable: {exc}", err=True)
            sys.exit(FAILURE)

    return wrapper  # type: ignore[return-value]
