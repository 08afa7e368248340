"""The migration's own stream tail: the producer's poller, in a thread of the command.

It reads SOURCE's DynamoDB stream from the captured moment (its checkpoints, under the name
``migrate:NAME``, take over on a rerun) and enqueues per-key replicate (and backup) tasks for
the workers, exactly as ``python -m producer`` does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from producer import status
from producer.enqueue import Enqueuer, Target
from producer.filters import RecordFilter
from producer.poller import Poller, PollerOptions
from producer.sources import Position
from producer.sources.dynamodb_streams import DynamoDBStreamsSource
from tasks.coord import pending
from tasks.coord.redis_conn import connection
from tasks.core.config import settings
from tasks.core.locations import Table

CLOCK_MARGIN_SECONDS = 120.0
"""The tail starts this long before the captured moment: the stream's creation times are
rounded, and this machine's clock may be behind the service's. Replaying a change is harmless."""


def consumer_name(migration: str) -> str:
    return f"migrate:{migration}"


@dataclass
class Tail:
    source: Table
    targets: tuple[Target, ...]
    migration: str
    captured_at: float
    turnover_at: float | None = None  # forward only changes made before it (rollback window)
    _poller: Poller | None = None
    _enqueuer: Enqueuer | None = None
    _thread: threading.Thread | None = None
    _error: list[BaseException] = field(default_factory=list)

    def start(self) -> None:
        from worker.app import app

        since = self.captured_at - CLOCK_MARGIN_SECONDS
        self._enqueuer = enqueuer = Enqueuer(
            app, connection(), self.source.location.spec, self.targets, settings().keys_per_message
        )
        self._poller = Poller(
            DynamoDBStreamsSource(self.source, None),
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
    def lag_seconds(self) -> float:
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
