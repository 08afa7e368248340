"""One row per pipeline for ``replicator status``: the fleet at a glance.

A row joins what the producers registered and publish for the pipeline (``producer.status``:
live producers, shards held, iterator ages, stalled checkpoints, warnings) with what the
workers count per target (``tasks.coord.stats``: apply lag samples; ``tasks.coord.deadletters``)
and what its verifier proved (``tasks.verify.state``: the last full pass, its drift, the
coverage of the pass in hand).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from producer import status
from tasks.coord import deadletters, stats
from tasks.core.times import age_text
from tasks.diff.match import KINDS
from tasks.jobs.redis_store import RedisJobStore
from tasks.verify import state as verify_state


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
    verified_at: float | None = None  # when the last full verify pass ended (epoch seconds)
    drift: int | None = None  # drift keys that pass confirmed
    coverage: float | None = None  # share of the pass in hand's segments done
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def rows(client: redis.Redis, names: Sequence[str] | None = None) -> list[PipelineRow]:
    """A row for each pipeline named (each that ever registered when None), in that order."""
    streams = {s.pipeline or s.name: s for s in status.read(client)}
    letters = [entry.target for _, entry in deadletters.entries(client)]
    wanted = sorted(streams) if names is None else list(names)
    found = [_row(client, name, streams.get(name), letters) for name in wanted]
    for row in found:
        _verified(client, row)
    return found


def _verified(client: redis.Redis, row: PipelineRow) -> None:
    """The verifier's part of the row: last full pass, its drift, the current pass's coverage;
    a warning for drift, and for no full pass within twice the pass time."""
    cursor, last = verify_state.read(client, row.pipeline)
    if cursor.job:
        snapshot = RedisJobStore(client).snapshot(cursor.job)
        done = sum(1 for s in snapshot.segments if s.finished)
        row.coverage = round(done / max(len(snapshot.segments), 1), 4)
    if last is None:
        return
    row.verified_at = float(last["ended"])
    row.drift = sum(int(last.get(kind, 0)) for kind in KINDS)
    age, every = time.time() - row.verified_at, float(last.get("every") or 0)
    if row.drift:
        row.warnings.append(
            f"pipeline {row.pipeline}: verify pass {last['pass']} confirmed {row.drift} drift "
            f"keys ({last.get('repaired', 0)} repaired)"
        )
    if every and age > 2 * every:
        row.warnings.append(
            f"pipeline {row.pipeline}: no full verify pass for {age_text(age)} (a pass takes "
            f"{age_text(every)}): is its verifier running?"
        )


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
