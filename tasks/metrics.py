"""Prometheus metrics: read at scrape time from where the numbers already live.

Two collectors, each served by ``serve`` on its own port (``REPLICATOR_METRICS_PORT``):

* ``RedisCollector`` (workers): the counters the workers keep in Redis (``tasks.stats``), the
  dead-letter list, the bulk jobs (``tasks.jobs``) and the depth of every Celery queue. Worker
  pool processes are forked, so nothing is counted in process memory: every worker's endpoint
  shows the same cluster-wide values, and any one of them can be scraped.
* ``ProducerCollector``: the producer's ``ProducerStats`` and checkpoint ages, in its process.

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` units) and are listed in
the README ("Running it as a service").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import redis
from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from tasks import deadletters, stats
from tasks.config import settings
from tasks.errors import ConfigurationError

# Counters the workers keep per target in Redis (tasks.stats): field -> (metric, help).
TARGET_COUNTERS = {
    "puts": ("replicator_items_put", "Items put on the target (replica table or S3 backup)."),
    "deletes": ("replicator_items_deleted", "Keys deleted from the target."),
    "reads": ("replicator_primary_reads", "Keys read from the primary (consistent reads)."),
    "contended": ("replicator_contended_keys", "Keys written again because another task raced."),
    "failed": ("replicator_key_failures", "Keys that failed an attempt."),
    "retried": ("replicator_key_retries", "Keys sent again after a failed attempt."),
    "dead_lettered": ("replicator_dead_lettered_keys", "Keys dead-lettered after retries."),
}
# Celery's Redis transport keeps priority levels as extra lists: NAME, NAME\x06\x16N.
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
LAG_QUANTILES = (0.5, 0.99, 1.0)


class MetricsPortError(ConfigurationError):
    """The metrics port cannot be bound."""


def port_from_env(env: Mapping[str, str]) -> int:
    """``REPLICATOR_METRICS_PORT``: 0 or absent means no metrics endpoint."""
    raw = env.get("REPLICATOR_METRICS_PORT", "").strip() or "0"
    try:
        port = int(raw)
    except ValueError:
        raise ConfigurationError(f"REPLICATOR_METRICS_PORT={raw!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"REPLICATOR_METRICS_PORT={port} is not a port number")
    return port


def serve(port: int, collector: Collector, address: str = "0.0.0.0") -> CollectorRegistry:
    """Serve ``collector`` on http://ADDRESS:PORT/metrics from a daemon thread."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    try:
        start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        raise MetricsPortError(
            f"cannot serve metrics on port {port}: {exc.strerror or exc} (is another process "
            "using it? set REPLICATOR_METRICS_PORT / --metrics-port to a free port, or 0 for none)"
        ) from exc
    return registry


# -- workers: what Redis holds ------------------------------------------------------------------


class RedisCollector(Collector):
    """Cluster-wide replication counters, dead letters, bulk jobs and queue depths."""

    def __init__(
        self,
        client: Callable[[], redis.Redis],
        broker: Callable[[], redis.Redis],
        queues: Sequence[str],
    ) -> None:
        self._client, self._broker, self._queues = client, broker, tuple(queues)
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # one scrape at a time: each reads Redis
            client = self._client()
            yield from _target_metrics(client)
            yield from _throttle_metrics(client)
            yield from _task_retry_metrics(client)
            yield from _dead_letter_metrics(client)
            yield from _job_metrics(client)
            yield from _queue_metrics(self._broker(), self._queues)


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
            index = min(len(samples) - 1, int(len(samples) * q))
            lag.add_metric([target, f"{q:g}"], samples[index] / 1000)
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


def _task_retry_metrics(client: redis.Redis) -> Iterator[Metric]:
    family = CounterMetricFamily(
        "replicator_task_retries", "Celery task retries, by task name.", labels=["task"]
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


def _jobs(client: redis.Redis) -> Iterator[tuple[str, dict[str, str]]]:
    prefix = settings().key("job", "")
    for name in client.scan_iter(match=prefix + "*", count=1000):
        job_id = stats.text(name)[len(prefix) :]
        if ":" in job_id:  # a segment hash or the records list
            continue
        raw = {stats.text(k): stats.text(v) for k, v in client.hgetall(name).items()}
        if "segments" in raw:
            yield job_id, raw


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
    prefix = settings().key("job", "")
    for job_id, raw in sorted(_jobs(client)):
        by_status: dict[str, int] = {"waiting": 0, "running": 0, "done": 0, "failed": 0}
        totals: dict[str, int] = {}
        for i in range(int(raw["segments"])):
            seg = {
                stats.text(k): stats.text(v)
                for k, v in client.hgetall(f"{prefix}{job_id}:seg:{i}").items()
            }
            status = seg.get("status", "waiting")
            by_status[status] = by_status.get(status, 0) + 1
            for key, value in seg.items():
                if key.startswith("c:"):
                    totals[key[2:]] = totals.get(key[2:], 0) + int(value)
        for status, n in by_status.items():
            segments.add_metric([job_id, raw.get("kind", ""), status], n)
        for name, n in sorted(totals.items()):
            counts.add_metric([job_id, raw.get("kind", ""), name], n)
    yield segments
    yield counts


def queue_depth(broker: redis.Redis, queue: str) -> int:
    """Messages waiting in a Celery queue (every priority level's list)."""
    names = [queue, *(f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS if step)]
    pipe = broker.pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
    return sum(int(n) for n in pipe.execute())


def _queue_metrics(broker: redis.Redis, queues: Sequence[str]) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "replicator_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"]
    )
    for queue in queues:
        depth.add_metric([queue], queue_depth(broker, queue))
    yield depth
    yield GaugeMetricFamily(
        "replicator_unacked_messages",
        "Messages delivered to workers and not yet acknowledged (running or prefetched).",
        value=int(broker.hlen("unacked")),
    )


# -- the producer: its own process --------------------------------------------------------------


class ProducerCollector(Collector):
    """The producer's counters (``ProducerStats``) and checkpoint ages, read at scrape time."""

    COUNTERS: ClassVar[dict[str, str]] = {
        "records_read": "Change records read from the stream.",
        "records_filtered": "Change records dropped by the turnover / TTL filters.",
        "records_malformed": "Change records that could not be parsed (skipped, logged).",
        "keys_enqueued": "Keys sent to the workers.",
        "keys_coalesced": "Keys not sent because they were already waiting in the queue.",
        "gaps": "Gaps: changes lost to stream retention (run diff-tables --repair).",
        "shards_finished": "Closed shards read to their end.",
    }

    def __init__(
        self,
        stream: str,
        stats_source: Callable[[], Any],
        checkpoint_ages: Callable[[], Mapping[str, float]],
    ) -> None:
        self._stream, self._stats, self._ages = stream, stats_source, checkpoint_ages

    def collect(self) -> Iterator[Metric]:
        current = self._stats()
        for field, doc in self.COUNTERS.items():
            family = CounterMetricFamily(f"replicator_producer_{field}", doc, labels=["stream"])
            family.add_metric([self._stream], getattr(current, field))
            yield family
        lag = GaugeMetricFamily(
            "replicator_producer_lag_seconds",
            "Seconds from the newest change read on each shard to now (0 at the tip).",
            labels=["stream", "shard"],
        )
        for shard, seconds in sorted(dict(current.lag_seconds).items()):
            lag.add_metric([self._stream, shard], seconds)
        yield lag
        yield _stream_gauge(
            "replicator_producer_active_shards",
            "Shards being read.",
            self._stream,
            len(current.lag_seconds),
        )
        age = GaugeMetricFamily(
            "replicator_producer_checkpoint_age_seconds",
            "Seconds since each shard's checkpoint was last written.",
            labels=["stream", "shard"],
        )
        for shard, seconds in sorted(self._ages().items()):
            age.add_metric([self._stream, shard], seconds)
        yield age


def _stream_gauge(name: str, doc: str, stream: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=["stream"])
    family.add_metric([stream], value)
    return family
