"""Worker metrics: read at scrape time from where the numbers already live, in Redis.

The counters the workers keep (``tasks.coord.stats``), the dead-letter list, the bulk jobs
(through their store, ``tasks.jobs.redis_store``) and the depth of every Celery queue (from the
broker, Redis or RabbitMQ: ``tasks.metrics.queues``). Worker pool processes are forked, so
nothing is counted in process memory: every worker's endpoint shows the same cluster-wide
values, and any one of them can be scraped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tasks.coord import deadletters, stats
from tasks.coord.ratelimit import rate_in_force
from tasks.jobs.model import STATUSES
from tasks.jobs.redis_store import RedisJobStore
from tasks.metrics.queues import QueueCounts

# Counters the workers keep per target in Redis (tasks.coord.stats): field -> (metric, help).
TARGET_COUNTERS = {
    "puts": ("replicator_items_put", "Items put on the target (replica table or S3 backup)."),
    "deletes": ("replicator_items_deleted", "Keys deleted from the target."),
    "reads": ("replicator_primary_reads", "Keys read from the primary (consistent reads)."),
    "contended": ("replicator_contended_keys", "Keys written again because another task raced."),
    "failed": ("replicator_key_failures", "Keys that failed an attempt."),
    "retried": ("replicator_key_retries", "Keys sent again after a failed attempt."),
    "dead_lettered": ("replicator_dead_lettered_keys", "Keys dead-lettered after retries."),
    "filtered": ("replicator_filtered_keys", "Keys a transform left out (deleted on the target)."),
}
LAG_QUANTILES = (0.5, 0.99, 1.0)


class RedisCollector(Collector):
    """Cluster-wide replication counters, dead letters, bulk jobs and queue depths."""

    def __init__(
        self, client: Callable[[], redis.Redis], queue_counts: Callable[[], QueueCounts]
    ) -> None:
        self._client, self._queue_counts = client, queue_counts
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # one scrape at a time: each reads Redis
            client = self._client()
            yield from _target_metrics(client)
            yield from _throttle_metrics(client)
            yield from _task_retry_metrics(client)
            yield from _dead_letter_metrics(client)
            yield from _job_metrics(client)
            yield from _queue_metrics(self._queue_counts())


def _target_metrics(client: redis.Redis) -> Iterator[Metric]:
    families = {
        field: CounterMetricFamily(name, doc, labels=["target"])
        for field, (name, doc) in TARGET_COUNTERS.items()
    }
    applied = GaugeMetricFamily(
        "replicator_last_applied_timestamp_seconds",
        "When a change was last applied to the target (Unix time).",
        labels=["target"],
    )
    lag = GaugeMetricFamily(
        "replicator_replication_lag_seconds",
        "Seconds from a change's creation on the primary to its application, over the last "
        f"{stats.LAG_SAMPLES} changes applied (quantile 1 is the maximum).",
        labels=["target", "quantile"],
    )
    for target in stats.targets(client):
        counts = stats.read(client, target)
        for field, family in families.items():
            family.add_metric([target], counts.get(field, 0.0))
        if "last_applied_at" in counts:
            applied.add_metric([target], counts["last_applied_at"])
        samples = sorted(stats.lag_samples(client, target))
        for q in LAG_QUANTILES if samples else ():
            lag.add_metric([target, f"{q:g}"], stats.quantile(samples, q) / 1000)
    yield from families.values()
    yield applied
    yield lag


def _throttle_metrics(client: redis.Redis) -> Iterator[Metric]:
    family = CounterMetricFamily(
        "replicator_throttles",
        "DynamoDB throttling seen by workers: throttled attempts (botocore's retries included) "
        "and batch responses with unprocessed keys or items.",
        labels=["table", "side"],
    )
    for (table, side), n in sorted(stats.throttles(client).items()):
        family.add_metric([table, side], n)
    yield family
    units = CounterMetricFamily(
        "replicator_consumed_capacity_units",
        "Capacity units bulk jobs (backfill, export load, restore, verify) consumed, as DynamoDB "
        "reported them (ReturnConsumedCapacity), by table and side.",
        labels=["table", "side"],
    )
    for (table, side), u in sorted(stats.consumed_units(client).items()):
        units.add_metric([table, side], u)
    yield units
    denied = CounterMetricFamily(
        "replicator_access_denied",
        "DynamoDB, Kinesis and S3 calls refused for a missing permission, by the IAM action "
        "named (its keys are dead-lettered, the action in their reason).",
        labels=["action"],
    )
    for action, n in sorted(stats.access_denied(client).items()):
        denied.add_metric([action], n)
    yield denied


def _task_retry_metrics(client: redis.Redis) -> Iterator[Metric]:
    family = CounterMetricFamily(
        "replicator_task_retries",
        "Tasks sent again after a transient failure, by task name.",
        labels=["task"],
    )
    for task, n in sorted(stats.task_retries(client).items()):
        family.add_metric([task], n)
    yield family


def _dead_letter_metrics(client: redis.Redis) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "replicator_dead_letters",
        "Keys waiting in the dead-letter list (replicator dead-letters list|replay|purge).",
        value=deadletters.count(client),
    )


def _job_metrics(client: redis.Redis) -> Iterator[Metric]:
    segments = GaugeMetricFamily(
        "replicator_bulk_segments",
        "Segments of each bulk job (diff, backup, backfill, restore) by status.",
        labels=["job", "kind", "status"],
    )
    counts = CounterMetricFamily(
        "replicator_bulk_items",
        "Counters of each bulk job (scanned, compared, missing, written, ...).",
        labels=["job", "kind", "count"],
    )
    rates = GaugeMetricFamily(
        "replicator_bulk_rate_per_second",
        "The rate a bulk job with --rate may run at now (items/s): the rate asked for, or less "
        "while its table is throttled (tasks.coord.ratelimit).",
        labels=["job", "kind"],
    )
    store = RedisJobStore(client)
    for job in store.jobs():
        snapshot = store.snapshot(job.id)
        for status in STATUSES:
            segments.add_metric([job.id, job.kind, status], snapshot.count(status))
        for name, n in sorted(snapshot.totals.items()):
            counts.add_metric([job.id, job.kind, name], n)
        rate = rate_in_force(client, job.id) if job.params.get("rate") else None
        if rate is not None and not all(s.finished for s in snapshot.segments):
            rates.add_metric([job.id, job.kind], rate)
    yield segments
    yield counts
    yield rates


def _queue_metrics(counts: QueueCounts) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "replicator_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"]
    )
    for queue, waiting in counts.waiting.items():
        depth.add_metric([queue], waiting)
    yield depth
    if counts.unacked is not None:  # Redis only: AMQP does not tell
        yield GaugeMetricFamily(
            "replicator_unacked_messages",
            "Messages delivered to workers and not yet acknowledged (running or prefetched).",
            value=counts.unacked,
        )
