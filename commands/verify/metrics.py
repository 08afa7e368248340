"""The verifier's metrics, labelled by pipeline: items checked, drift confirmed per kind, drift
repaired (this process's counts), and when the last full pass ended (from Redis, so that a
restarted verifier still tells how old the last proof is)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tasks.diff.match import KINDS

if TYPE_CHECKING:
    from commands.verify.sweep import Sweep


class VerifyCollector(Collector):
    def __init__(self, sweeps: Sequence[Sweep]) -> None:
        self.sweeps = sweeps

    def collect(self) -> Iterator[Metric]:
        items = CounterMetricFamily(
            "replicator_verify_items", "Items compared by verify passes.", labels=["pipeline"]
        )
        drift = CounterMetricFamily(
            "replicator_drift_keys",
            "Keys whose difference outlived the changes on their way (confirmed drift).",
            labels=["pipeline", "kind"],
        )
        repaired = CounterMetricFamily(
            "replicator_drift_repaired",
            "Confirmed drift keys read equal after their repair.",
            labels=["pipeline"],
        )
        last = GaugeMetricFamily(
            "replicator_verify_last_pass_timestamp_seconds",
            "When the last full verify pass ended (epoch seconds).",
            labels=["pipeline"],
        )
        for sweep in self.sweeps:
            name, totals = sweep.pipeline.name, sweep.totals
            items.add_metric([name], totals.items)
            for kind in KINDS:
                drift.add_metric([name, kind], totals.drift[kind])
            repaired.add_metric([name], totals.repaired)
            ended = sweep.last_pass_ended()
            if ended is not None:
                last.add_metric([name], ended)
        yield from (items, drift, repaired, last)
