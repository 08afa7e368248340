"""Celery's settings, from the process's settings object (``tasks.core.config``).

``CELERY_BROKER_URL`` picks the broker: RabbitMQ (``amqp://``, recommended for production) or
Redis (``redis://``, the default, redis://127.0.0.1:6379/0). Results and the coordination state
are in Redis either way (``CELERY_RESULT_BACKEND``, ``REPLICATOR_REDIS_URL``).

``rediss://`` and ``amqps://`` URLs connect over TLS, verified as ``REPLICATOR_TLS_*`` says
(``tasks.core.tls``): the broker, the results and the coordination Redis agree.

Both brokers give a dead worker's messages to another worker within seconds, and never take a
message from a live worker, however long its task runs:

* RabbitMQ: durable quorum queues, publisher confirms; the broker requeues a worker's
  unacknowledged messages as soon as its connection drops, or after ``REPLICATOR_BROKER_HEARTBEAT``
  seconds of silence (a frozen process, a machine gone). Countdowns (the retries of
  ``tasks.resend``) use Celery's native delayed delivery, which needs topic exchanges.
* Redis: a message not acknowledged within ``REPLICATOR_VISIBILITY_TIMEOUT`` seconds (30) is
  delivered again; workers look for such messages every ``REPLICATOR_RESTORE_INTERVAL`` seconds
  (5), and keep renewing the messages they hold (``worker.visibility``), so only the messages of
  a dead worker run out.
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue  # type: ignore[attr-defined]

from tasks.core.config import Settings
from tasks.names import QUEUES, REPLICATION_QUEUE, ROUTES

# Redis as broker: one worker at a time sweeps, under a lock in Redis. A worker killed or frozen
# while it sweeps keeps that lock until it expires (kombu's default: 300 s, every sweep
# skipped meanwhile); a sweep takes milliseconds, and two overlapping ones are harmless (each
# message is put back in a transaction), so the lock expires after 15 s.
SWEEP_LOCK_SECONDS = 15


def celery_config(cfg: Settings) -> dict[str, Any]:
    common = {
        **connection_config(cfg),
        "result_backend_transport_options": {"visibility_timeout": cfg.visibility_timeout},
        "broker_connection_retry_on_startup": True,
        "task_default_queue": REPLICATION_QUEUE,
        "task_routes": ROUTES,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # A task is acknowledged only when it finished; a worker lost mid-task puts it back.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_track_started": True,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "result_expires": 24 * 3600,
        "result_extended": True,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
    }
    broker = rabbitmq_config(cfg) if cfg.broker_kind == "amqp" else redis_config(cfg)
    return {**common, **broker}


def connection_config(cfg: Settings) -> dict[str, Any]:
    """The broker and result backend URLs, and their TLS options (``tasks.core.tls``): the
    ``ssl_*`` options of a URL move to ``broker_use_ssl`` / ``redis_backend_use_ssl``, where
    Celery, kombu and Flower all read them."""
    broker, backend = cfg.broker, cfg.backend
    found: dict[str, Any] = {"broker_url": broker.url, "result_backend": backend.url}
    if broker.ssl is not None:
        found["broker_use_ssl"] = dict(broker.ssl)
        # Celery prefers CELERY_BROKER_URL as found in the environment (ssl_* options and all)
        # to broker_url, but not to these two (set only with TLS: a plain app may be pointed
        # at another broker later through broker_url)
        found["broker_read_url"] = found["broker_write_url"] = broker.url
    if backend.ssl is not None:
        found["redis_backend_use_ssl"] = dict(backend.ssl)
    return found


def redis_config(cfg: Settings) -> dict[str, Any]:
    """Redis as broker: short visibility, swept often (the holders renew theirs)."""
    return {
        "task_queues": [Queue(q, Exchange(q), routing_key=q) for q in QUEUES],  # type: ignore[no-untyped-call]
        "broker_transport_options": {
            "visibility_timeout": cfg.visibility_timeout,
            "unacked_restore_interval": cfg.restore_interval,
            "unacked_restore_throttle": 1,
            "unacked_mutex_expire": SWEEP_LOCK_SECONDS,
        },
    }


def rabbitmq_config(cfg: Settings) -> dict[str, Any]:
    """RabbitMQ as broker: durable quorum queues, confirms, heartbeats, native delays."""
    queues = [
        Queue(  # type: ignore[no-untyped-call]
            q,
            Exchange(q, type="topic"),  # type: ignore[no-untyped-call]
            routing_key=q,
            durable=True,
            queue_arguments={"x-queue-type": "quorum"},
        )
        for q in QUEUES
    ]
    return {
        "task_queues": queues,
        # The publish returns once the broker has the message (in the quorum queue's log).
        "broker_transport_options": {"confirm_publish": True},
        # A frozen worker (its machine gone, its connection still open) is noticed by the broker
        # only through heartbeats: it drops a connection silent for two to three timeouts. The
        # worker sends one when it has sent nothing for a quarter of the timeout.
        "broker_heartbeat": cfg.broker_heartbeat,
        "broker_heartbeat_checkrate": 4,
        # Quorum queues have no global QoS: Celery must use a per-consumer prefetch ...
        "worker_detect_quorum_queues": True,
        # ... and cannot raise it for countdown tasks held by the worker: countdowns wait in the
        # broker instead, in Celery's delayed-delivery queues (quorum queues too).
        "broker_native_delayed_delivery_queue_type": "quorum",
        # When the connection drops, the broker has already requeued the running tasks for
        # another worker: stop them here rather than finishing them twice.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
    }
