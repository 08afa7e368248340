"""The workers' collector against a real Redis holding known state (no worker needed)."""

from __future__ import annotations

from typing import Any

import pytest
import redis as redis_lib
from celery import Celery
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from tasks import names
from tasks.coord import deadletters, stats
from tasks.coord.redis_conn import connection
from tasks.core.config import from_env
from tasks.jobs.model import Page
from tasks.jobs.redis_store import RedisJobStore
from tasks.metrics.cluster import RedisCollector
from tasks.metrics.queues import from_redis, reader
from worker.settings import celery_config


def scraped(client: redis_lib.Redis) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        RedisCollector(lambda: client, lambda: from_redis(client, ("replication", "bulk")))
    )
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_collector_reports_what_redis_holds(env: dict[str, str], redis_client: Any) -> None:
    client = connection()
    pipe = client.pipeline()
    stats.add(pipe, "us-east-1/replica", {"puts": 7, "deletes": 2, "reads": 9, "retried": 1})
    stats.add_lag(pipe, "us-east-1/replica", [1.0])  # created long ago: a big lag
    pipe.execute()
    stats.note_throttle("us-east-1/primary", "primary", 3)
    stats.flush_throttles(client)
    stats.add_task_retry(client, "diff-segment")
    deadletters.record(
        client,
        "replicate",
        "us-east-1/primary",
        "us-east-1/replica",
        {'{"id":{"S":"a"}}': "access denied"},
        attempts=5,
    )
    # Celery's Redis transport: priority 0 in NAME, other priorities in NAME\x06\x16N.
    client.rpush("replication", "m1", "m2")
    client.rpush("replication\x06\x163", "m3")
    client.hset("unacked", "tag", "m4")
    store = RedisJobStore(client)
    job = store.create("diff", 3, {"primary": "p", "replica": "r"})
    store.start(job.id, 0)
    store.advance(job.id, 0, Page({"scanned": 40, "missing": 2}, checkpoint=None))
    store.finish(job.id, 0)
    store.start(job.id, 1)
    store.advance(job.id, 1, Page({"scanned": 5}, checkpoint={"k": 1}))

    got = scraped(client)

    def at(name: str, **labels: str) -> float:
        return got[(name, frozenset(labels.items()))]

    replica = {"target": "us-east-1/replica"}
    assert at("replicator_items_put_total", **replica) == 7
    assert at("replicator_items_deleted_total", **replica) == 2
    assert at("replicator_primary_reads_total", **replica) == 9
    assert at("replicator_key_retries_total", **replica) == 1
    assert at("replicator_replication_lag_seconds", **replica, quantile="1") > 1e9
    assert at("replicator_throttles_total", table="us-east-1/primary", side="primary") == 3
    assert at("replicator_task_retries_total", task="diff-segment") == 1
    assert at("replicator_dead_letters") == 1
    assert at("replicator_queue_depth", queue="replication") == 3
    assert at("replicator_queue_depth", queue="bulk") == 0
    assert at("replicator_unacked_messages") == 1
    segs = {"job": job.id, "kind": "diff"}
    assert at("replicator_bulk_segments", **segs, status="done") == 1
    assert at("replicator_bulk_segments", **segs, status="running") == 1
    assert at("replicator_bulk_segments", **segs, status="waiting") == 1
    assert at("replicator_bulk_items_total", **segs, count="scanned") == 45
    assert at("replicator_bulk_items_total", **segs, count="missing") == 2


@pytest.mark.parametrize("broker", ["amqp"], indirect=True)
def test_queue_depth_on_rabbitmq_counts_the_ready_messages(
    env: dict[str, str], broker_url: str
) -> None:
    """RabbitMQ's counts come from a passive declaration of each queue (a vhost of the test's
    own): messages published as the producer publishes them, and 0 for a queue never declared."""
    cfg = from_env({**env, "CELERY_BROKER_URL": broker_url})
    app = Celery("metrics-test", set_as_current=False)
    app.conf.update(celery_config(cfg))
    for i in range(3):
        app.send_task(names.REPLICATE, args=("us-east-1/p", "us-east-1/r", [{"id": {"S": str(i)}}]))
    app.close()

    counts = reader(cfg.broker, ("replication", "never-declared"))()

    assert counts.waiting == {"replication": 3, "never-declared": 0}
    assert counts.unacked is None  # AMQP has no such count (the management API has)
