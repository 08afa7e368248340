"""Redis as broker: a worker renews the messages it holds, so that only a dead worker's run out.

kombu's Redis transport keeps every delivered, unacknowledged message in the ``unacked`` hash,
indexed by the time it was delivered in the ``unacked_index`` sorted set. Every
``REPLICATOR_RESTORE_INTERVAL`` seconds one worker sweeps that index (``restore_visible``) and
puts back on its queue every message delivered more than ``REPLICATOR_VISIBILITY_TIMEOUT``
seconds ago. On its own, that timeout has to choose between a long bulk segment being handed to
a second worker while it still runs, and a dead worker's keys waiting an hour.

``RenewVisibility`` removes the choice: in the worker's main process (the one that holds the
broker connection, whatever the pool), a timer sets the index time of every message the worker
holds (running, prefetched, or waiting for its countdown) to now, every
``RENEWALS_PER_TIMEOUT``-th of the timeout, with ``ZADD XX`` so that a message acknowledged
meanwhile is not brought back. A live worker's messages are never put back, however long their
tasks run; those of a worker that was killed, or frozen with its connection still open, stop
being renewed and are delivered again within the timeout plus one sweep.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from celery import bootsteps

from tasks.core import logs
from tasks.core.config import settings

log = logs.get("worker.visibility")
RENEWALS_PER_TIMEOUT = 3


def held_tags(channel: Any) -> list[str]:
    """The delivery tags of the messages ``channel`` holds unacknowledged.

    kombu's virtual QoS keeps them in ``_delivered`` (an ordered dict: tag -> message); tags in
    ``_dirty`` are acknowledged but not yet dropped from it.
    """
    qos = channel.qos
    dirty = set(qos._dirty)
    return [tag for tag in list(qos._delivered) if tag not in dirty]


def renew(channel: Any, now: float | None = None) -> int:
    """Set the index time of every message ``channel`` holds to ``now``; returns how many."""
    tags = held_tags(channel)
    if not tags:
        return 0
    stamp = time.time() if now is None else now
    with channel.conn_or_acquire() as client:
        return int(
            client.zadd(channel.unacked_index_key, dict.fromkeys(tags, stamp), xx=True, ch=True)
        )


class RenewVisibility(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer step (Redis broker only): renew the held messages on the event loop's timer."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.tref: Any = None

    def include_if(self, c: Any) -> bool:
        return settings().broker_kind == "redis"

    def start(self, c: Any) -> None:
        interval = settings().visibility_timeout / RENEWALS_PER_TIMEOUT
        channel = c.task_consumer.channel
        self.tref = c.timer.call_repeatedly(interval, self._renew, (channel,))

    def _renew(self, channel: Any) -> None:
        try:
            renew(channel)
        except (redis.RedisError, OSError, *channel.connection_errors) as exc:
            # The next round tries again; a worker that stays cut off from Redis long enough
            # has its messages delivered again, which replication tolerates (idempotent).
            log.warning("could not renew the visibility of held messages", error=str(exc))

    def stop(self, c: Any) -> None:
        if self.tref is not None:
            c.timer.cancel(self.tref)
            self.tref = None

    shutdown = stop
