"""The running command's heartbeat: a thread that says, every second, that it is alive.

The phases block for minutes (a backfill waits for the workers), so the beat runs beside them:
``replicator migrate status`` shows ``updated`` from it, and reads a migration whose beat
stopped as ``interrupted``.
"""

from __future__ import annotations

import threading
from types import TracebackType

import redis

from commands.migrate.record import HEARTBEAT_SECONDS, MigrationStore
from tasks.core import logs

log = logs.get(__name__)


class Heartbeat:
    """``with Heartbeat(store, name):`` beats until the block ends."""

    def __init__(self, store: MigrationStore, name: str) -> None:
        self._store, self._name = store, name
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._store.beat(self._name)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(HEARTBEAT_SECONDS):
            try:
                self._store.beat(self._name)
            except redis.RedisError as exc:  # the phases meet it too, and decide
                log.warning("heartbeat failed; retrying", error=str(exc))
