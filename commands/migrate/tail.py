"""The migration's own stream tail: the producer's poller, in a thread of the command.

It reads SOURCE's DynamoDB stream (or the Kinesis stream SOURCE writes to, ``--kinesis-stream``)
from the captured moment (its checkpoints, under the name
``migrate:NAME``, take over on a rerun) and enqueues per-key replicate (and backup) tasks for
the workers, exactly as ``python -m producer`` does, with two differences:

* a change made before the capture is replayed without its creation time for the lag: the
  backfill copies what it changed, and the time it waited for the tail to start is no
  replication lag (the workers keep lag samples only for changes with a time,
  ``tasks.coord.stats``); a backup still records each version's change time;
* from ``watch`` to ``unwatch`` (the catch-up and the verify), it remembers the ids of the keys
  changed since a moment (the verify asks which of its discrepancies a live write explains):
  memory in proportion to the keys written meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from producer import status
from producer.enqueue import Enqueuer, Target
from producer.filters import RecordFilter
from producer.poller import Poller, PollerOptions
from producer.records import ChangeRecord
from producer.sources import Position
from producer.sources.dynamodb_streams import DynamoDBStreamsSource
from producer.sources.kinesis import KinesisSource
from tasks.coord import pending
from tasks.coord.redis_conn import connection
from tasks.core.config import settings
from tasks.core.keys import Key
from tasks.core.locations import Table

CLOCK_MARGIN_SECONDS = 120.0
"""The tail starts this long before the captured moment: the stream's creation times are
rounded, and this machine's clock may be behind the service's. Replaying a change is harmless."""


def consumer_name(migration: str) -> str:
    return f"migrate:{migration}"


@dataclass
class CaptureEnqueuer(Enqueuer):
    """The producer's enqueuer, knowing the captured moment and watching for changed keys."""

    captured_at: float = 0.0
    watch_since: float | None = None
    changed: set[str] = field(default_factory=set)

    def enqueue(self, records: Sequence[ChangeRecord]) -> tuple[int, int]:
        since = self.watch_since
        if since is not None:
            with self._lock:
                self.changed.update(r.key.id for r in records if r.created >= since)
        return super().enqueue(records)

    def _send(
        self,
        target: Target,
        todo: list[Key],
        times: tuple[dict[Key, float], dict[Key, float]],
        session: str,
    ) -> int:
        """The oldest change's time (the lag's) only for changes made since the capture; the
        newest (a backed-up version's change time) stays."""
        oldest, newest = times
        timed = {k: t if t >= self.captured_at else 0.0 for k, t in oldest.items()}
        return super()._send(target, todo, (timed, newest), session)

    def unwatch(self) -> None:
        with self._lock:
            self.watch_since = None
            self.changed = set()

    def changed_among(self, ids: set[str]) -> set[str]:
        with self._lock:
            return ids & self.changed


@dataclass
class Tail:
    source: Table
    targets: tuple[Target, ...]
    migration: str
    captured_at: float
    turnover_at: float | None = None  # forward only changes made before it (rollback window)
    kinesis_stream: str | None = None  # SOURCE's Kinesis stream instead of its DynamoDB stream
    _poller: Poller | None = None
    _enqueuer: CaptureEnqueuer | None = None
    _thread: threading.Thread | None = None
    _error: list[BaseException] = field(default_factory=list)

    def start(self) -> None:
        from worker.app import app

        since = self.captured_at - CLOCK_MARGIN_SECONDS
        self._enqueuer = enqueuer = CaptureEnqueuer(
            app,
            connection(),
            self.source.location.spec,
            self.targets,
            settings().keys_per_message,
            captured_at=self.captured_at,
        )
        self._poller = Poller(
            KinesisSource(self.source, self.kinesis_stream)
            if self.kinesis_stream
            else DynamoDBStreamsSource(self.source, None),
            consumer_name(self.migration),
            enqueuer,
            RecordFilter(
                turnover_role="before" if self.turnover_at is not None else None,
                turnover_at=self.turnover_at,
                not_before=since,
            ),
            PollerOptions(start=Position("AT_TIMESTAMP", timestamp=since)),
        )
        self._thread = threading.Thread(target=self._run, name="tail", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._poller is not None
        try:
            self._poller.run()
        except BaseException as exc:  # reported by ``check``; the command decides
            self._error.append(exc)

    def check(self) -> None:
        """Raise what stopped the tail, if anything did."""
        if self._error:
            raise self._error[0]

    @property
    def behind_seconds(self) -> float:
        """How far behind the stream's newest record the tail reads (0 at the tip)."""
        if self._poller is None:
            return 0.0
        return max(self._poller.stats.lag_seconds.values(), default=0.0)

    @property
    def read_once(self) -> bool:
        """The tail holds shards, and has read each of them at least once."""
        if self._poller is None:
            return False
        shards = list(self._poller.stats.shards.values())
        return bool(shards) and all(status.pages > 0 for status in shards)

    def watch(self, since: float) -> None:
        """From now on, remember the keys of the changes made at or after ``since``."""
        if self._enqueuer is not None and self._enqueuer.watch_since is None:
            self._enqueuer.watch_since = since

    def unwatch(self) -> None:
        """Stop remembering changed keys, and forget them."""
        if self._enqueuer is not None:
            self._enqueuer.unwatch()

    def changed(self, keys: Sequence[Key]) -> set[str]:
        """The ids of ``keys`` changed since the watch began (as far as the tail has read)."""
        if self._enqueuer is None:
            return set()
        return self._enqueuer.changed_among({k.id for k in keys})

    def pending_keys(self) -> int:
        """Keys enqueued by the tail that no worker has started yet."""
        if self._enqueuer is None:
            return 0
        session = self._enqueuer.session
        return sum(pending.count(connection(), t.name, session) for t in self.targets)

    def stop(self) -> None:
        """Finish the page in hand, checkpoint, return."""
        if self._poller is not None:
            self._poller.stop.set()
        if self._thread is not None:
            self._thread.join()

    def retire(self) -> None:
        """Stop, and leave ``replicator status`` no producer to watch for this migration (it is
        over: nothing should warn that its tail no longer runs). A rerun registers it again."""
        self.stop()
        status.unregister(connection(), consumer_name(self.migration))
