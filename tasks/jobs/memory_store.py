"""Job records in this process, for a command that works alone (no broker, no Redis)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from tasks.core.errors import NotFoundError
from tasks.jobs.model import (
    DONE,
    FAILED,
    RETRYING,
    RUNNING,
    Job,
    Page,
    SegmentState,
    Snapshot,
    new_job_id,
)


class MemoryJobStore:
    """Job records in this process (the command works alone); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._segments: dict[str, list[SegmentState]] = {}
        self._records: dict[str, list[str]] = {}
        self._cancelled: set[str] = set()

    def create(self, kind: str, segments: int, params: Mapping[str, Any]) -> Job:
        job = Job(new_job_id(), kind, segments, dict(params))
        with self._lock:
            self._jobs[job.id] = job
            self._segments[job.id] = [SegmentState() for _ in range(segments)]
            self._records[job.id] = []
        return job

    def load(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise NotFoundError(f"bulk job {job_id} does not exist") from None

    def start(self, job_id: str, segment: int) -> SegmentState | None:
        with self._lock:
            if job_id in self._cancelled:
                return None
            state = self._segments[job_id][segment]
            state.deliveries += 1
            if state.status not in (DONE, RETRYING):
                state.attempt, state.reason, state.progress_at = 0, "", time.time()
            if state.status != DONE:
                state.status = RUNNING
            return _copy(state)

    def advance(self, job_id: str, segment: int, page: Page, delivery: int = 0) -> bool:
        with self._lock:
            state = self._segments[job_id][segment]
            if delivery and delivery != state.deliveries:
                return False
            state.counts = dict(Counter(state.counts) + Counter(page.counts))
            state.checkpoint = json.loads(json.dumps(page.checkpoint))
            if sum(state.counts.values()) > state.reached:
                state.reached = sum(state.counts.values())
                state.attempt, state.reason, state.progress_at = 0, "", time.time()
            self._records[job_id].extend(page.records)
            return job_id not in self._cancelled

    def retrying(
        self, job_id: str, segment: int, reason: str, delivery: int = 0
    ) -> SegmentState | None:
        with self._lock:
            state = self._segments[job_id][segment]
            if delivery and delivery != state.deliveries:
                return None
            state.status, state.reason = RETRYING, reason
            state.attempt += 1
            return _copy(state)

    def finish(self, job_id: str, segment: int, error: str = "", delivery: int = 0) -> None:
        with self._lock:
            state = self._segments[job_id][segment]
            if delivery and delivery != state.deliveries:
                return
            state.status, state.error = (FAILED, error) if error else (DONE, "")

    def snapshot(self, job_id: str) -> Snapshot:
        with self._lock:
            return Snapshot(
                [_copy(s) for s in self._segments[job_id]], cancelled=job_id in self._cancelled
            )

    def records(self, job_id: str, start: int) -> list[str]:
        with self._lock:
            return list(self._records[job_id][start:])

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancelled.add(job_id)


def _copy(state: SegmentState) -> SegmentState:
    return replace(state, counts=dict(state.counts))
