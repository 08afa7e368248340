"""A per-key task's message, typed: built and read here only.

The producer sends one for each batch of changed keys, a task sends one again for the keys that
failed (a retry), ``replicator dead-letters replay`` one for the keys it replays, a verifier one
for the drift it repairs: all through ``KeysMessage.send``, and the tasks read theirs back into
one. Besides the locations and the keys (typed wire JSON) it carries the creation time of each
key's oldest change (the lag), the producer run's session (pending marks), for a backup the time
of each key's newest change (its version records it), for a replica the pipeline's transform,
and the attempt. What a later message for the same keys must carry (``carried``: the transform)
goes with a retry and into a dead letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasks import names

KIND_OF_TASK = {names.REPLICATE: "replicate", names.BACKUP_RECORD: "backup"}
TASK_OF_KIND = {kind: task for task, kind in KIND_OF_TASK.items()}


@dataclass(frozen=True)
class KeysMessage:
    task: str  # tasks.names.REPLICATE or tasks.names.BACKUP_RECORD
    primary: str  # the primary's location, as sent
    target: str  # the replica's location spec, or the backup's s3:// URL
    keys: list[dict[str, Any]]
    created: list[float] | None = None
    session: str | None = None
    changed: list[float] | None = None  # backup only
    transform: dict[str, Any] | None = None  # replica only: TransformSpec.to_params
    attempt: int = 0

    @property
    def kind(self) -> str:
        """``replicate`` or ``backup`` (what dead letters say)."""
        return KIND_OF_TASK[self.task]

    @property
    def carried(self) -> dict[str, Any]:
        """What every later message for these keys carries, a retry's or a replay's."""
        return {"transform": self.transform} if self.transform else {}

    def kwargs(self) -> dict[str, Any]:
        found = {
            "created": self.created,
            "session": self.session,
            "changed": self.changed,
            "transform": self.transform,
        }
        shown = {name: value for name, value in found.items() if value is not None}
        return {**shown, "attempt": self.attempt} if self.attempt else shown

    def send(self, app: Any) -> None:
        app.send_task(self.task, args=(self.primary, self.target, self.keys), kwargs=self.kwargs())

    @classmethod
    def replayed(
        cls, kind: str, primary: str, target: str, keys: list[dict[str, Any]], carried: Any
    ) -> KeysMessage:
        """A dead letter's keys sent again, with what they carried."""
        return cls(TASK_OF_KIND[kind], primary, target, keys, transform=carried.get("transform"))
