"""One message's worth of per-key work, shared by the replicate and backup-record tasks.

Runs ``sync_keys`` for a batch, turns permanent errors into per-key failures, sends retryable
failures again on their own (``tasks.replication.failures``, through ``tasks.resend``) and logs
one summary line.

When Redis or the broker fails under a task, its message is put back on the queue (or, if even
that cannot reach Redis, left unacknowledged until the visibility timeout): never dropped, since
a dropped message would also leave its keys marked pending. Celery's own ``retry`` is not used
for that, because it drops the message when the retry cannot be published.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from tasks.aws.dynamo import Failure
from tasks.coord import stats, tables
from tasks.coord.redis_conn import connection
from tasks.core import logs
from tasks.core.config import settings
from tasks.core.errors import InvalidInputError, NotFoundError, PermanentError, TransientError
from tasks.core.keys import Key
from tasks.core.locations import Table
from tasks.messages import KeysMessage
from tasks.replication.failures import settle
from tasks.replication.sync import Sink, sync_keys
from tasks.resend import send_again

log = logs.get("tasks")
PERMANENT = (NotFoundError, PermanentError, InvalidInputError)
Send = Callable[[tuple[Any, ...]], None]
INFRASTRUCTURE = (redis.RedisError, OperationalError)

# Options every per-key task shares (Flower shows the task by its name).
TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "ignore_result": True,
    "acks_late": True,
    "soft_time_limit": 240,
    "time_limit": 300,
}


Sinks = Callable[[], tuple[Table, Sink]]


def run_message(task: Any, message: KeysMessage, sink: Sinks) -> dict[str, int]:
    """The body of a per-key task: run the batch; requeue the message if Redis fails under it."""

    def send(args: tuple[Any, ...]) -> None:
        send_again(task, args, dict(message.carried), message.attempt)

    try:
        return run_batch(message, sink, send, task.request.id)
    except INFRASTRUCTURE as exc:
        log.warning(
            "redis failed under the task; message requeued", task_id=task.request.id, error=str(exc)
        )
        raise Reject(exc, requeue=True) from exc


def run_batch(
    message: KeysMessage, sink: Sinks, send: Send, task_id: str | None = None
) -> dict[str, int]:
    """Make the target match the primary for the message's keys; returns the counts."""
    started = time.monotonic()
    rounds = settings().guard_max_rounds
    source, destination = sink()
    tables.note(connection(), [source, *destination.tables])  # for new worker processes
    typed, created = distinct(message)
    try:
        outcome = sync_keys(source, destination, typed, created, message.session, rounds)
        failed, counts = outcome.failed, outcome.counts()
    except (*PERMANENT, TransientError) as exc:
        retryable = isinstance(exc, TransientError)
        failed = {k.canonical: Failure(str(exc), retryable) for k in typed}
        counts = {"failed": len(failed)}

    def retry(again: list[dict[str, Any]]) -> None:
        send((message.primary, message.target, again))

    filtered = len(getattr(destination, "left_out", ()))  # keys a transform left out
    shown = str(source), destination.name
    retried, dead = settle(message.kind, *shown, failed, message.attempt, retry, message.carried)
    tally = {"failed": len(failed), "retried": retried, "dead_lettered": dead, "filtered": filtered}
    _count(destination.name, tally)
    summary = {**counts, "keys": len(message.keys), "retried": retried, "dead_lettered": dead}
    summary["filtered"] = filtered
    log.info(
        message.kind,
        task_id=task_id,
        primary=shown[0],
        target=shown[1],
        seconds=round(time.monotonic() - started, 3),
        **summary,
    )
    return summary


def distinct(message: KeysMessage) -> tuple[list[Key], list[float]]:
    """The message's keys, each once (a key repeated costs one read), with the creation time
    of the oldest change each covers (0: unknown)."""
    times = message.created or []
    oldest: dict[Key, float] = {}
    for i, wire in enumerate(message.keys):
        key, when = Key.from_wire(wire), times[i] if i < len(times) else 0.0
        known = oldest.get(key, 0.0)
        oldest[key] = min(known, when) if known and when else known or when
    return list(oldest), list(oldest.values())


def newest(keys: list[dict[str, Any]], times: list[float] | None) -> dict[str, float]:
    """The newest change time of each key of a message (canonical JSON -> epoch seconds)."""
    found: dict[str, float] = {}
    for wire, when in zip(keys, times or [], strict=False):
        canonical = Key.from_wire(wire).canonical
        found[canonical] = max(found.get(canonical, 0.0), when)
    return found


def _count(target: str, counts: dict[str, int]) -> None:
    """Failed, retried and dead-lettered keys of this batch, beside the target's counters."""
    if any(counts.values()):
        pipe = connection().pipeline(transaction=False)
        stats.add(pipe, target, counts)
        pipe.execute()
