"""Sending a task again: the one retry mechanism of every task.

A task that failed for a transient reason is published again as a new message, with
``attempt + 1`` and a countdown from the retry policy (``tasks.core.retry``), of at least
``MIN_COUNTDOWN`` (RabbitMQ's delayed delivery counts whole seconds; Celery refuses a shorter
countdown on quorum queues): per-key tasks send only their failed keys
(``tasks.replication.batches``), segment tasks their segment, which resumes from its checkpoint
(``tasks.segments``). Celery's ``retry`` and ``autoretry_for`` are not
used: when the new message cannot be published (Redis down), ``retry`` drops the current one,
whereas this puts the current message back on the queue (``Reject(requeue=True)``), so that
nothing is lost. Every re-send is counted per task name (``replicator_task_retries_total``).
"""

from __future__ import annotations

import time
from typing import Any

import redis
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from tasks.coord import stats
from tasks.coord.redis_conn import connection
from tasks.core import logs
from tasks.core.retry import MIN_COUNTDOWN, policy

log = logs.get("tasks")
NOT_PUBLISHED = (OperationalError, redis.RedisError)


def send_again(
    task: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    attempt: int,
    deadline: float | None = None,
    **options: Any,
) -> float | None:
    """Send ``task`` again with ``args`` and ``kwargs`` as attempt ``attempt + 1`` (0-based).

    Returns the countdown, or None, sending nothing, when ``deadline`` (wall-clock time) has
    passed; a countdown that would end after it is cut short, so the last attempt starts at the
    deadline (or ``MIN_COUNTDOWN`` after now, whichever is later). Raises
    ``Reject(requeue=True)`` when the task cannot be published. ``options`` go to ``send_task``
    (``kwargsrepr``, say).
    """
    countdown = policy().countdown(attempt)
    if deadline is not None:
        left = deadline - time.time()
        if left <= 0:
            return None
        countdown = min(countdown, left)
    countdown = max(countdown, MIN_COUNTDOWN)
    try:
        task.app.send_task(
            task.name,
            args=args,
            kwargs={**kwargs, "attempt": attempt + 1},
            countdown=countdown,
            **options,
        )
    except NOT_PUBLISHED as exc:
        log.warning("could not send the task again; message requeued", error=str(exc))
        raise Reject(exc, requeue=True) from exc
    _count(task.name)
    return countdown


def _count(name: str) -> None:
    """Count the re-send; a Redis failure here must not requeue a message already sent again."""
    try:
        stats.add_task_retry(connection(), name)
    except redis.RedisError as exc:
        log.warning("re-send not counted", task=name, error=str(exc))
