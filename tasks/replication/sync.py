"""Make a target match the primary for a set of keys: the heart of replication and backup.

For each key: read the primary's current item with a strongly consistent read, then put it on
the target if it exists or delete it there if it does not. Change records are used for their keys
only, so this is idempotent, order-insensitive and safe to replay. A ``Sink`` is the target: the
replica table (``ReplicaSink``) or the incremental S3 backup.

Concurrency: ``tasks.coord.guard`` detects keys that another task claimed since we did. Claimed
before our write: we leave the key to that newer task (it reads after us). Claimed after our write
began: the key gets another read-write round (bounded; then it is handed back as a retryable
failure), because the other task's write may have landed before ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tasks.aws import dynamo
from tasks.aws.dynamo import Failure
from tasks.coord import pending
from tasks.coord.guard import StaleWriteGuard, Written
from tasks.coord.redis_conn import connection
from tasks.core.errors import (
    ConfigurationError,
    InvalidInputError,
    PermanentError,
    ReplicatorError,
    TransientError,
)
from tasks.core.keys import Key
from tasks.core.locations import Table
from tasks.core.transform import KeyChangedError, Transform, TransformSpec
from tasks.core.transform import load as load_transform
from tasks.core.typed_json import Item, KeySchema, validate_key


class Sink(Protocol):
    """Where the primary's state of a key goes."""

    @property
    def name(self) -> str:
        """Stable identity of the target, used in Redis key names."""

    @property
    def tables(self) -> tuple[Table, ...]:
        """The DynamoDB tables it writes to (none for S3)."""

    def prepare(self, primary_schema: KeySchema) -> None:
        """Check once per call that the target can take this primary's keys."""

    def write(self, present: Sequence[Item], absent: Sequence[Key]) -> dict[str, Failure]:
        """Put present items, remove absent keys; failed keys by canonical JSON."""


@dataclass
class ReplicaSink:
    """The replica table; with a transform it receives ``t(item)``, and a key whose item the
    transform leaves out is deleted (``tasks.core.transform``)."""

    replica: Table
    transform: TransformSpec = field(default_factory=TransformSpec)
    _loaded: Transform | None = field(default=None, init=False, repr=False)
    left_out: set[str] = field(default_factory=set)  # keys the transform turned into deletes

    @property
    def name(self) -> str:
        return str(self.replica)

    @property
    def tables(self) -> tuple[Table, ...]:
        return (self.replica,)

    def prepare(self, primary_schema: KeySchema) -> None:
        dynamo.require_schema(self.replica, primary_schema, "the primary")
        if not self.transform.empty and self._loaded is None:
            try:
                self._loaded = load_transform(self.transform, primary_schema.names)
            except ConfigurationError as exc:  # a worker without the module: never untransformed
                raise PermanentError(f"transform {self.transform.identity}: {exc}") from exc

    def write(self, present: Sequence[Item], absent: Sequence[Key]) -> dict[str, Failure]:
        if self._loaded is None:
            return dynamo.batch_write(self.replica, present, absent)
        kept, gone, failed = [], list(absent), {}
        for item in present:
            try:
                shaped = self._loaded(item)
            except KeyChangedError as exc:
                failed[_canonical(item, self._loaded.key_names)] = Failure(str(exc), False)
                continue
            if shaped is None:
                key = Key.of({n: item[n] for n in self._loaded.key_names})
                self.left_out.add(key.canonical)
                gone.append(key)
            else:
                kept.append(shaped)
        return {**failed, **dynamo.batch_write(self.replica, kept, gone)}


def _canonical(item: Item, names: Sequence[str]) -> str:
    return Key.of({n: item[n] for n in names}).canonical


@dataclass
class Outcome:
    """What one call did: counts, and the keys that failed (canonical JSON -> Failure)."""

    reads: int = 0
    puts: int = 0
    deletes: int = 0
    rounds: int = 0
    contended: int = 0
    superseded: int = 0
    failed: dict[str, Failure] = field(default_factory=dict)

    @property
    def applied(self) -> int:
        return self.puts + self.deletes

    def counts(self) -> dict[str, int]:
        return {
            "reads": self.reads,
            "puts": self.puts,
            "deletes": self.deletes,
            "contended": self.contended,
            "superseded": self.superseded,
            "failed": len(self.failed),
        }


def sync_keys(
    primary: Table,
    sink: Sink,
    keys: Sequence[Key],
    created: Sequence[float] = (),
    session: str | None = None,
    max_rounds: int = 5,
) -> Outcome:
    """Make ``sink`` match ``primary`` for ``keys`` (distinct); ``created`` aligns with keys.

    Redis sees three round trips per round whatever the number of keys (``tasks.coord.guard``):
    the claim (with the release of the keys' pending marks), the check before writing, and the
    check after writing with the round's counters and lag."""
    outcome = Outcome()
    schema = dynamo.schema(primary)
    sink.prepare(schema)
    todo = _valid_keys(keys, schema, outcome)
    created_by_key = dict(zip((k.canonical for k in keys), created, strict=False))
    guard = StaleWriteGuard(connection(), sink.name)
    release = pending.release(sink.name, session, [k.id for k in keys])
    if not todo and release:
        guard.claim([], release)
    for _ in range(max_rounds):
        if not todo:
            break
        todo = _round(primary, sink, todo, guard, outcome, release, created_by_key)
        release = None
    for key in todo:
        outcome.failed[key.canonical] = Failure("another task kept writing this key")
    return outcome


def _valid_keys(keys: Sequence[Key], schema: KeySchema, outcome: Outcome) -> list[Key]:
    valid = []
    for key in keys:
        try:
            validate_key(key.item, schema)
        except InvalidInputError as exc:
            outcome.failed[key.canonical] = Failure(str(exc), retryable=False)
        else:
            valid.append(key)
    return valid


def _round(
    primary: Table,
    sink: Sink,
    keys: list[Key],
    guard: StaleWriteGuard,
    outcome: Outcome,
    release: pending.Release | None,
    created_by_key: dict[str, float],
) -> list[Key]:
    """One claim-read-write-check round; returns the keys that must go round again."""
    outcome.rounds += 1
    token = guard.claim([k.id for k in keys], release)
    read = _read(primary, keys)
    outcome.reads += len(keys)
    # A key that a newer task claimed while we read is left to it: it reads after us.
    superseded = set(guard.contended([k.id for k in keys], token))
    mine = [k for k in keys if k.id not in superseded]
    present = [read.found[k.canonical] for k in mine if k.canonical in read.found]
    absent = [k for k in mine if k.canonical not in read.found and k.canonical not in read.failed]
    failed = {k.canonical: read.failed[k.canonical] for k in mine if k.canonical in read.failed}
    failed.update(sink.write(present, absent) if present or absent else {})
    outcome.failed.update(failed)

    written = [k for k in mine if k.canonical not in failed]
    contended = set(
        guard.settle(
            token,
            Written(
                key_ids=[k.id for k in written],
                puts=[k.canonical in read.found for k in written],
                created=[created_by_key.get(k.canonical, 0.0) for k in written],
                reads=len(keys),
                superseded=len(keys) - len(mine),
            ),
        )
    )
    again = [k for k in written if k.id in contended]
    puts = sum(1 for k in written if k.id not in contended and k.canonical in read.found)
    outcome.contended += len(again)
    outcome.superseded += len(keys) - len(mine)
    outcome.puts += puts
    outcome.deletes += len(written) - len(again) - puts
    return again


def _read(primary: Table, keys: list[Key]) -> dynamo.BatchResult:
    try:
        return dynamo.batch_get(primary, keys, consistent=True)
    except ReplicatorError as exc:
        failure = Failure(str(exc), retryable=isinstance(exc, TransientError))
        return dynamo.BatchResult(found={}, failed={k.canonical: failure for k in keys})
