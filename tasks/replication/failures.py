"""What happens to keys that failed: retried later on their own, or dead-lettered.

A retryable failure is sent again (only the failed keys) after a capped, jittered exponential
delay, up to ``task_max_attempts``; after that, or at once for a permanent failure, the key and
its reason go to the dead-letter list.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from tasks.aws.dynamo import Failure
from tasks.coord import deadletters
from tasks.coord.redis_conn import connection
from tasks.core.backoff import delay
from tasks.core.config import settings

Retry = Callable[[list[dict[str, Any]], float], None]


def settle(
    kind: str,
    source: str,
    target: str,
    failed: Mapping[str, Failure],
    attempt: int,
    retry: Retry,
) -> tuple[int, int]:
    """Retry or dead-letter failed keys; returns (retried, dead-lettered)."""
    cfg = settings()
    final = attempt + 1 >= cfg.task_max_attempts
    again = [k for k, f in failed.items() if f.retryable and not final]
    dead = {k: f.reason for k, f in failed.items() if not f.retryable or final}
    if again:
        retry(
            [json.loads(k) for k in again],
            delay(attempt, cfg.task_backoff_base, cfg.task_backoff_cap),
        )
    deadletters.record(connection(), kind, source, target, dead, attempt + 1)
    return len(again), len(dead)
