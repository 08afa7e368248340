"""The producer's metrics: counters, leases and per-shard gauges, read at scrape time.

Every family carries a ``pipeline`` label (the pipeline's name in the pipelines file; with the
single-table flags, ``--name`` or the primary table) and the ``stream`` it reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from producer.stats import ProducerStats

if TYPE_CHECKING:
    from producer.poller import Poller


@dataclass(frozen=True)
class ProducerView:
    """What the collector reads from one running pipeline."""

    stream: str
    producer: str  # this producer's id
    retention: float  # seconds the stream keeps a record
    stats: Callable[[], ProducerStats]
    checkpoint_ages: Callable[[], Mapping[str, float]]
    leases: Callable[[], Mapping[str, int]]  # leases per live producer, as last seen in Redis
    ready_shards: Callable[[], int]  # shards ready to read (their parents finished)
    pipeline: str = ""


def view_of(poller: Poller) -> ProducerView:
    return ProducerView(
        stream=poller.source.stream_id,
        producer=poller.owner,
        retention=poller.source.retention_seconds,
        stats=lambda: poller.stats,
        checkpoint_ages=poller.checkpoints.ages,
        leases=lambda: poller.keeper.last_snapshot,
        ready_shards=lambda: len(poller.graph.ready()),
        pipeline=poller.pipeline,
    )


COUNTERS: dict[str, str] = {
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
SHARD_GAUGES: dict[str, str] = {
    "lag_seconds": "Seconds from the newest change read on each shard to now (0 at the tip).",
    "iterator_age_seconds": "How far each shard's reader is behind: MillisBehindLatest "
    "(Kinesis) or the age of the last record read (DynamoDB Streams), in seconds.",
    "checkpoint_stalled_seconds": "Seconds since each shard's checkpoint last advanced while "
    "records were waiting (0 while it advances or the shard is at its tip).",
    "retention_used_ratio": "Iterator age as a fraction of the stream's retention: at 1 "
    "unread records are lost.",
    "checkpoint_age_seconds": "Seconds since each shard's checkpoint was last written.",
}
STREAM = ["pipeline", "stream"]
Family = CounterMetricFamily | GaugeMetricFamily


class ProducerCollector(Collector):
    """The counters, leases and per-shard gauges of every pipeline, read at scrape time."""

    COUNTERS: ClassVar[dict[str, str]] = COUNTERS

    def __init__(self, views: Callable[[], Sequence[ProducerView]]) -> None:
        self._views = views

    def collect(self) -> Iterator[Metric]:
        views = list(self._views())
        now = time.time()
        families: dict[str, Family] = {
            **{
                name: CounterMetricFamily(f"replicator_producer_{name}", doc, labels=STREAM)
                for name, doc in COUNTERS.items()
            },
            **{
                name: GaugeMetricFamily(
                    f"replicator_producer_{name}", doc, labels=[*STREAM, "shard"]
                )
                for name, doc in SHARD_GAUGES.items()
            },
            "active_shards": GaugeMetricFamily(
                "replicator_producer_active_shards", "Shards this producer reads.", labels=STREAM
            ),
            "ready_shards": GaugeMetricFamily(
                "replicator_producer_ready_shards",
                "Shards of the stream ready to read (their parents finished), as this producer "
                "sees them: all the producers together should read as many.",
                labels=STREAM,
            ),
            "leases": GaugeMetricFamily(
                "replicator_producer_leases",
                "Shard leases held by each live producer of the stream (as this producer saw "
                "them).",
                labels=[*STREAM, "producer"],
            ),
        }
        for view in views:
            _add(families, view, now)
        yield from families.values()


def _add(families: Mapping[str, Family], view: ProducerView, now: float) -> None:
    current, labels = view.stats(), [view.pipeline, view.stream]
    for name in COUNTERS:
        families[name].add_metric(labels, getattr(current, name))
    for shard, state in sorted(current.shards.items()):
        used = state.iterator_age / view.retention if view.retention else 0.0
        for name, value in (
            ("lag_seconds", state.lag),
            ("iterator_age_seconds", state.iterator_age),
            ("checkpoint_stalled_seconds", state.stalled(now)),
            ("retention_used_ratio", used),
        ):
            families[name].add_metric([*labels, shard], value)
    for shard, seconds in sorted(view.checkpoint_ages().items()):
        families["checkpoint_age_seconds"].add_metric([*labels, shard], seconds)
    families["active_shards"].add_metric(labels, len(current.shards))
    families["ready_shards"].add_metric(labels, view.ready_shards())
    for producer, count in sorted(view.leases().items()):
        families["leases"].add_metric([*labels, producer], count)
