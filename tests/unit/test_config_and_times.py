from __future__ import annotations

import random

import pytest

from tasks.core import backoff
from tasks.core.config import from_env
from tasks.core.errors import ConfigurationError, InvalidInputError
from tasks.core.times import parse_time


def test_settings_from_env_with_per_side_credentials() -> None:
    cfg = from_env(
        {
            "CELERY_BROKER_URL": "redis://r:6379/2",
            "REPLICATOR_REPLICA_PROFILE": "dr",
            "REPLICATOR_REPLICA_ROLE_ARN": "arn:aws:iam::2:role/w",
            "REPLICATOR_TASK_MAX_ATTEMPTS": "3",
        }
    )
    assert cfg.redis_url == "redis://r:6379/2" and cfg.task_max_attempts == 3
    assert cfg.side("replica").profile == "dr" and cfg.side("primary").profile is None
    assert cfg.key("ticket", "x") == "replicator:ticket:x"


def test_rabbitmq_as_broker_keeps_redis_for_coordination_and_results() -> None:
    cfg = from_env({"CELERY_BROKER_URL": "amqp://u:p@mq:5672/prod"})
    assert cfg.broker_kind == "amqp" and cfg.broker_url == "amqp://u:p@mq:5672/prod"
    assert cfg.redis_url == cfg.result_backend == "redis://127.0.0.1:6379/0"
    cfg = from_env({"CELERY_BROKER_URL": "amqp://mq//", "REPLICATOR_REDIS_URL": "redis://r/1"})
    assert cfg.redis_url == cfg.result_backend == "redis://r/1"
    cfg = from_env({"CELERY_BROKER_URL": "redis://b/0", "REPLICATOR_REDIS_URL": "redis://r/1"})
    assert cfg.broker_kind == "redis" and cfg.result_backend == "redis://b/0"
    assert (cfg.visibility_timeout, cfg.restore_interval, cfg.broker_heartbeat) == (30, 5, 2)


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(ConfigurationError) as error:
        from_env({"REPLICATOR_AWS_MAX_ATTEMPTS": "many", "REPLICATOR_BACKOFF_CAP": "soon"})
    assert "REPLICATOR_AWS_MAX_ATTEMPTS" in str(error.value)
    assert "REPLICATOR_BACKOFF_CAP" in str(error.value)
    with pytest.raises(
        ConfigurationError, match=r"must start with amqp:// or amqps:// \(RabbitMQ, amqps: TLS\)"
    ):
        from_env({"CELERY_BROKER_URL": "sqs://x"})
    with pytest.raises(ConfigurationError, match="between 1 and 1000"):
        from_env({"REPLICATOR_KEYS_PER_MESSAGE": "1001"})
    assert from_env({"REPLICATOR_KEYS_PER_MESSAGE": "1000"}).keys_per_message == 1000


def test_times() -> None:
    assert parse_time("1764237600000") == 1764237600.0
    assert parse_time("2026-11-27T10:00:00Z") == parse_time("2026-11-27T10:00:00+00:00")
    assert parse_time("2026-11-27T10:00:00") == parse_time("2026-11-27T10:00:00Z")
    with pytest.raises(InvalidInputError, match="ISO 8601"):
        parse_time("yesterday")


def test_backoff_is_capped_and_jittered() -> None:
    random.seed(1)
    delays = [backoff.delay(n, 0.1, 2.0) for n in range(20)]
    assert all(0 <= d <= 2.0 for d in delays)
    assert len(set(delays)) == len(delays)
    assert max(backoff.delay(0, 0.1, 2.0) for _ in range(200)) <= 0.1
