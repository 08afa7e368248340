"""One row per pipeline for ``replicator status``: the fleet at a glance.

A row joins what the producers registered and publish for the pipeline (``producer.status``:
live producers, shards held, iterator ages, stalled checkpoints, warnings) with what the
workers count per target (``tasks.coord.stats``: apply lag samples; ``tasks.coord.deadletters``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from producer import status
from tasks.coord import deadletters, stats


@dataclass
class PipelineRow:
    pipeline: str
    stream: str = ""
    targets: list[str] = field(default_factory=list)
    transform: str = ""  # the identity of the transform its replicas get ("" for none)
    producers: int = 0
    shards: int = 0  # shards held by a live producer
    lag_ms_p50: float | None = None  # change created -> applied, over the recent samples
    lag_ms_p99: float | None = None
    max_iterator_age_s: float = 0.0
    stalled_shards: int = 0
    dead_letters: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def rows(client: redis.Redis, names: Sequence[str] | None = None) -> list[PipelineRow]:
    """A row for each pipeline named (each that ever registered when None), in that order."""
    streams = {s.pipeline or s.name: s for s in status.read(client)}
    letters = [entry.target for _, entry in deadletters.entries(client)]
    wanted = sorted(streams) if names is None else list(names)
    return [_row(client, name, streams.get(name), letters) for name in wanted]


def _row(
    client: redis.Redis, name: str, stream: status.StreamStatus | None, letters: list[str]
) -> PipelineRow:
    if stream is None:
        return PipelineRow(name, warnings=[f"pipeline {name}: no producer has run it yet"])
    row = PipelineRow(name, stream.stream, list(stream.targets))
    row.transform = ",".join(sorted(set(stream.transforms.values())))
    row.producers = len(stream.producers)
    row.shards = len(stream.shards)
    row.max_iterator_age_s = max((s["iterator_age_s"] for s in stream.shards.values()), default=0)
    row.stalled_shards = sum(
        1 for s in stream.shards.values() if s["stalled_s"] >= status.STALLED_WARNING
    )
    row.dead_letters = sum(1 for target in letters if target in stream.targets)
    lags = sorted(lag for target in stream.targets for lag in stats.lag_samples(client, target))
    if lags:
        row.lag_ms_p50 = stats.quantile(lags, 0.5)
        row.lag_ms_p99 = stats.quantile(lags, 0.99)
    row.warnings = list(stream.warnings)
    return row
