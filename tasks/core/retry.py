"""The one retry policy of every task, per-key and segment tasks alike.

A task that failed for a transient reason is sent again as a new message with ``attempt + 1``
after a capped, jittered exponential countdown (``tasks.core.backoff``); ``tasks.resend`` does
the sending. When to stop depends on what a task can show for its work:

* a key (``replicate``, ``backup-record``) either is applied or is not: it goes again until
  ``attempts`` attempts have failed, then it is dead-lettered with its reason;
* a segment stores pages: it goes again as long as its current run of failures has lasted less
  than ``window`` seconds, counted from its last progress (a page that took it further than it
  had ever been) or from its start, the last retry starting at the window's end at the latest;
  when that one fails too, it is marked failed with its reason. A segment that moves on between
  failures starts a new window, however often it failed.

A window rather than a number of attempts bounds segments because one attempt may take anything
from milliseconds (a refused connection) to minutes (botocore's own retries of every request):
the window turns into a time the command can promise (``segment_give_up_bound``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.core.backoff import delay
from tasks.core.config import Settings, settings

# botocore's standard retry mode sleeps random() * min(scale * 2 ** i, 20) seconds before its
# retry i + 1 of a request; scale is 1 s for throttling, less for other errors
# (botocore.retries.standard.ExponentialBackoff). ``aws_max_attempts`` is its number of retries.
BOTOCORE_MAX_BACKOFF = 20.0
# The shortest countdown a task is sent again with (tasks.resend): RabbitMQ's delayed delivery
# counts whole seconds, and Celery refuses a countdown between 0 and 1 s on quorum queues
MIN_COUNTDOWN = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int
    base: float
    cap: float
    window: float

    def countdown(self, attempt: int) -> float:
        """Seconds to wait before sending attempt ``attempt + 1`` (``attempt`` is 0-based)."""
        return delay(attempt, self.base, self.cap)

    def key_exhausted(self, attempt: int) -> bool:
        """True when attempt ``attempt`` (0-based) of a key was its last."""
        return attempt + 1 >= self.attempts

    def segment_deadline(self, progress_at: float) -> float:
        """The wall-clock time after which a segment without progress is not sent again."""
        return progress_at + self.window


def policy(cfg: Settings | None = None) -> RetryPolicy:
    """The retry policy of ``cfg`` (by default the process's settings)."""
    cfg = cfg or settings()
    return RetryPolicy(
        cfg.task_max_attempts,
        cfg.task_backoff_base,
        cfg.task_backoff_cap,
        cfg.segment_retry_window,
    )


def botocore_backoff_bound(aws_max_attempts: int) -> float:
    """The longest botocore sleeps in total between the attempts of one request (throttled)."""
    return sum(min(2.0**i, BOTOCORE_MAX_BACKOFF) for i in range(aws_max_attempts))


def segment_give_up_bound(cfg: Settings) -> float:
    """Seconds from a segment's start (or last progress) until it is marked failed, at most,
    when every request fails at once (an endpoint answering errors, not one that hangs).

    Retries start within the window (the last one at its end at the latest, or the shortest
    countdown after the failure before it); that attempt fails after botocore's retries of its
    first request. An endpoint that hangs adds up to
    ``aws_max_attempts + 1`` times the connect and read timeouts; a retry waiting for a free
    worker adds its wait.
    """
    return cfg.segment_retry_window + MIN_COUNTDOWN + botocore_backoff_bound(cfg.aws_max_attempts)
