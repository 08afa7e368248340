"""Celery's settings, from the process's settings object (``tasks.core.config``).

``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND`` point every process at Redis; both default
to redis://127.0.0.1:6379/0. ``REPLICATOR_VISIBILITY_TIMEOUT`` (seconds) must stay above the
longest task: a message not acknowledged within it is delivered again (workers look for such
messages every ``REPLICATOR_RESTORE_INTERVAL`` seconds, 60 by default).
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue  # type: ignore[attr-defined]

from tasks.core.config import Settings, settings
from tasks.names import QUEUES, REPLICATION_QUEUE, ROUTES


def celery_config(cfg: Settings) -> dict[str, Any]:
    visibility = cfg.visibility_timeout
    # How often a worker looks for messages of dead workers whose visibility timeout ran out.
    restore_every = cfg.restore_interval
    return {
        "broker_url": cfg.broker_url,
        "result_backend": cfg.result_backend,
        "broker_transport_options": {
            "visibility_timeout": visibility,
            "unacked_restore_interval": restore_every,
            "unacked_restore_throttle": 1,
        },
        "result_backend_transport_options": {"visibility_timeout": visibility},
        "broker_connection_retry_on_startup": True,
        "task_queues": [Queue(q, Exchange(q), routing_key=q) for q in QUEUES],  # type: ignore[no-untyped-call]
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


CONFIG = celery_config(settings())
