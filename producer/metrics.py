"""The producer's metrics: counters, leases and per-shard gauges, read at scrape time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from producer.stats import ProducerStats


@dataclass(frozen=True)
class ProducerView:
    """What the collector reads from a running producer."""

    stream: str
    producer: str  # this producer's id
    retention: float  # seconds the stream keeps a record
    stats: Callable[[], ProducerStats]
    checkpoint_ages: Callable[[], Mapping[str, float]]
    leases: Callable[[], Mapping[str, int]]  # leases per live producer, as last seen in Redis
    ready_shards: Callable[[], int]  # shards ready to read (their parents finished)


class ProducerCollector(Collector):
    """The producer's counters, leases and per-shard gauges, read at scrape time."""

    COUNTERS: ClassVar[dict[str, str]] = {
        "records_read": "Change records read from the stream.",
        "records_filtered": "Change records dropped by the turnover / TTL filters.",
        "records_malformed": "Change records that could not be parsed (skipped, logged).",
        "keys_enqueued": "Keys sent to the workers.",
        "keys_coalesced": "Keys not sent because they were already waiting in the queue.",
        "gaps": "Gaps: changes lost to stream retention (run diff-tables --repair).",
        "shards_finished": "Closed shards read to their end.",
        "leases_taken": "Shard leases this producer took (free, expired or handed over).",
        "leases_released": "Shard leases this producer handed back (asked for, or stopping).",
        "leases_lost": "Shard leases another producer took while this one held them.",
        "checkpoints_refused": "Checkpoint writes refused because the lease had moved on.",
    }

    def __init__(self, view: ProducerView) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        view, current = self._view, self._view.stats()
        for field, doc in self.COUNTERS.items():
            family = CounterMetricFamily(f"replicator_producer_{field}", doc, labels=["stream"])
            family.add_metric([view.stream], getattr(current, field))
            yield family
        yield from self._shard_gauges(current)
        yield _stream_gauge(
            "replicator_producer_active_shards",
            "Shards this producer reads.",
            view.stream,
            len(current.shards),
        )
        yield _stream_gauge(
            "replicator_producer_ready_shards",
            "Shards of the stream ready to read (their parents finished), as this producer sees "
            "them: all the producers together should read as many.",
            view.stream,
            view.ready_shards(),
        )
        leases = GaugeMetricFamily(
            "replicator_producer_leases",
            "Shard leases held by each live producer of the stream (as this producer saw them).",
            labels=["stream", "producer"],
        )
        for producer, count in sorted(view.leases().items()):
            leases.add_metric([view.stream, producer], count)
        yield leases
        age = GaugeMetricFamily(
            "replicator_producer_checkpoint_age_seconds",
            "Seconds since each shard's checkpoint was last written.",
            labels=["stream", "shard"],
        )
        for shard, seconds in sorted(view.checkpoint_ages().items()):
            age.add_metric([view.stream, shard], seconds)
        yield age

    def _shard_gauges(self, current: ProducerStats) -> Iterator[Metric]:
        view, now = self._view, time.time()
        families = {
            "lag": "Seconds from the newest change read on each shard to now (0 at the tip).",
            "iterator_age": "How far each shard's reader is behind: MillisBehindLatest "
            "(Kinesis) or the age of the last record read (DynamoDB Streams), in seconds.",
            "checkpoint_stalled": "Seconds since each shard's checkpoint last advanced while "
            "records were waiting (0 while it advances or the shard is at its tip).",
            "retention_used": "Iterator age as a fraction of the stream's retention: at 1 "
            "unread records are lost.",
        }
        gauges = {
            name: GaugeMetricFamily(
                f"replicator_producer_{name}_{'ratio' if name == 'retention_used' else 'seconds'}",
                doc,
                labels=["stream", "shard"],
            )
            for name, doc in families.items()
        }
        for shard, state in sorted(current.shards.items()):
            labels = [view.stream, shard]
            gauges["lag"].add_metric(labels, state.lag)
            gauges["iterator_age"].add_metric(labels, state.iterator_age)
            gauges["checkpoint_stalled"].add_metric(labels, state.stalled(now))
            used = state.iterator_age / view.retention if view.retention else 0.0
            gauges["retention_used"].add_metric(labels, used)
        yield from gauges.values()


def _stream_gauge(name: str, doc: str, stream: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=["stream"])
    family.add_metric([stream], value)
    return family
