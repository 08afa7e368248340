"""The producer's metrics: its ``ProducerStats`` and checkpoint ages, read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


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
