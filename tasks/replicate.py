"""Celery task: make the replica match the primary for a batch of keys."""

from __future__ import annotations

from typing import Any

from tasks.batches import TASK_OPTIONS, run_message
from tasks.locations import parse_table
from tasks.sync import ReplicaSink
from worker.app import app


@app.task(name="replicate", **TASK_OPTIONS)
def replicate(
    self: Any,
    primary: str,
    replica: str,
    keys: list[dict[str, Any]],
    created: list[float] | None = None,
    session: str | None = None,
    attempt: int = 0,
) -> dict[str, int]:
    """Replicate ``keys`` (typed wire JSON) from ``primary`` to ``replica``."""
    return run_message(
        self,
        "replicate",
        primary,
        replica,
        lambda: ReplicaSink(parse_table(replica)),
        keys,
        created,
        session,
        attempt,
    )
