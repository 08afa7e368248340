"""Celery's settings per broker (worker.settings): what each broker needs for fast, safe
redelivery."""

from __future__ import annotations

from tasks.core.config import from_env
from worker.settings import celery_config


def test_rabbitmq_gets_durable_quorum_queues_confirms_heartbeats_and_native_delays() -> None:
    conf = celery_config(from_env({"CELERY_BROKER_URL": "amqp://guest:guest@mq:5672/prod"}))
    queues = {q.name: q for q in conf["task_queues"]}
    assert set(queues) == {"replication", "bulk"}
    for name, queue in queues.items():
        assert queue.durable and queue.queue_arguments == {"x-queue-type": "quorum"}
        # native delayed delivery (countdowns) binds through the queue's exchange: not direct
        assert queue.exchange.type == "topic" and queue.routing_key == name
    assert conf["broker_transport_options"] == {"confirm_publish": True}
    assert conf["worker_detect_quorum_queues"] is True
    assert conf["broker_native_delayed_delivery_queue_type"] == "quorum"
    assert conf["broker_heartbeat"] == 2 and conf["broker_heartbeat_checkrate"] == 4
    assert conf["result_backend"] == "redis://127.0.0.1:6379/0"
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]


def test_redis_gets_a_short_visibility_swept_often() -> None:
    conf = celery_config(from_env({"CELERY_BROKER_URL": "redis://r:6379/0"}))
    assert conf["broker_transport_options"] == {
        "visibility_timeout": 30,
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": 15,  # a sweeper that dies holding the lock blocks 15 s at most
    }
    assert all(not q.queue_arguments for q in conf["task_queues"])
    assert "broker_heartbeat" not in conf and conf["result_backend"] == "redis://r:6379/0"
    env = {"CELERY_BROKER_URL": "redis://r/0", "REPLICATOR_VISIBILITY_TIMEOUT": "90"}
    assert celery_config(from_env(env))["broker_transport_options"]["visibility_timeout"] == 90
