"""What happens to keys that failed: retried later on their own, or dead-lettered.

A retryable failure is sent again (only the failed keys, by ``tasks.resend``: a capped, jittered
exponential countdown) until the retry policy's attempts are spent (``tasks.core.retry``); after
that, or at once for a permanent failure, the key and its reason go to the dead-letter list.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from tasks.aws.dynamo import Failure
from tasks.coord import deadletters
from tasks.coord.redis_conn import connection
from tasks.core.retry import policy

Retry = Callable[[list[dict[str, Any]]], None]


def settle(
    kind: str,
    source: str,
    target: str,
    failed: Mapping[str, Failure],
    attempt: int,
    retry: Retry,
    carried: Mapping[str, Any] | None = None,
) -> tuple[int, int]:
    """Retry or dead-letter failed keys (with what a replay must carry: the transform);
    returns (retried, dead-lettered)."""
    final = policy().key_exhausted(attempt)
    again = [k for k, f in failed.items() if f.retryable and not final]
    dead = {k: f.reason for k, f in failed.items() if not f.retryable or final}
    if again:
        retry([json.loads(k) for k in again])
    deadletters.record(connection(), kind, source, target, dead, attempt + 1, carried)
    return len(again), len(dead)
