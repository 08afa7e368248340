"""The broker's queues as the metrics show them: messages waiting in each, and unacknowledged.

* Redis: the length of each queue's lists (one per priority level) and of kombu's ``unacked``
  hash (messages delivered to workers and not acknowledged yet).
* RabbitMQ: a passive declaration of each queue, which answers its ready messages. AMQP has no
  count of unacknowledged messages; RabbitMQ's management API has it (Flower shows it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import redis
from kombu import Connection  # type: ignore[attr-defined]
from kombu.exceptions import ChannelError

from tasks.coord.reach import redis_client
from tasks.core.config import broker_kind
from tasks.core.tls import Endpoint

# Celery's Redis transport keeps priority levels as extra lists: NAME, NAME\x06\x16N.
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)


@dataclass(frozen=True)
class QueueCounts:
    waiting: Mapping[str, int]
    unacked: int | None = None  # None: the broker does not say


def queue_depth(broker: redis.Redis, queue: str) -> int:
    """Messages waiting in a Celery queue on Redis (every priority level's list)."""
    names = [queue, *(f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS if step)]
    pipe = broker.pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
    return sum(int(n) for n in pipe.execute())


def from_redis(broker: redis.Redis, queues: Sequence[str]) -> QueueCounts:
    waiting = {queue: queue_depth(broker, queue) for queue in queues}
    return QueueCounts(waiting, int(broker.hlen("unacked")))


def from_amqp(broker: Endpoint, queues: Sequence[str]) -> QueueCounts:
    """Ready messages per queue; a queue not declared yet (no worker ever started) holds 0."""
    waiting = {}
    tls = dict(broker.ssl) if broker.ssl is not None else False
    with Connection(broker.url, ssl=tls, connect_timeout=5) as conn:  # type: ignore[no-untyped-call]
        for queue in queues:
            channel = conn.channel()
            try:
                waiting[queue] = int(channel.queue_declare(queue=queue, passive=True)[1])
            except ChannelError:
                waiting[queue] = 0  # the broker closed the channel: NOT_FOUND
            else:
                channel.close()
    return QueueCounts(waiting)


def reader(broker: Endpoint, queues: Sequence[str]) -> Callable[[], QueueCounts]:
    """A function counting ``queues`` on the broker (``Settings.broker``), at each call."""
    if broker_kind(broker.url) == "amqp":
        return lambda: from_amqp(broker, queues)
    client = redis_client(broker, socket_timeout=10)
    return lambda: from_redis(client, queues)
