"""Rolling keys back from an incremental backup: what each key becomes, and writing only that.

A ``Window`` says what to undo: every change after ``point`` (``--at T``), or, with an ``end``,
only the changes after ``point`` up to ``end`` (``--since T1 --at T``: the keys changed in that
window go back to their state at T1; a key changed again after T is left as it is and reported).

Each object's versions give one ``Decision``:

* ``unknown``: the backup has no version of the key: it is left alone (nothing says what it was);
* ``unchanged``: nothing to undo (no change in the window; or, comparing with the backup, its
  state at the point is its latest backed-up state);
* ``changed-after``: with an end, the key changed again after it: left as it is, reported;
* ``put`` / ``delete``: the state at the point (a stored version; or absent, a key that was
  created later or deleted by then).

``carry_out`` then reads the versions it needs (the state to put, or any stored version for the
key of a delete), reads the target's current items when the target existed, drops what already
matches (a put of an equal item, a delete of an absent key: a rerun writes nothing twice), and
writes the rest unless it is a dry run. Counts are of what was (or would be) written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tasks.aws import dynamo
from tasks.aws.s3 import Version
from tasks.backup.history import Timeline, read_version, timeline
from tasks.backup.restore import TableWriter, fitting_key
from tasks.core.keys import Key
from tasks.core.locations import S3Location, Table
from tasks.core.typed_json import Item, KeySchema, items_equal

THREADS = 16
PUT, DELETE, UNCHANGED, UNKNOWN, LATER = "put", "delete", "unchanged", "unknown", "changed-after"
CHANGED_AFTER = "changed_after"  # the count of LATER keys
COUNTS = (PUT, DELETE, UNCHANGED, UNKNOWN, CHANGED_AFTER)


@dataclass(frozen=True)
class Window:
    """The changes to undo: after ``point`` (up to ``end``, when given)."""

    point: datetime
    end: datetime | None = None

    @property
    def horizon(self) -> datetime:
        return self.end or self.point


@dataclass(frozen=True)
class Decision:
    """What one object's history says to do, and the version to read for it."""

    action: str
    version: Version | None = None  # put: the state; delete / changed-after: a stored version
    known: bool = False  # the key had a state (a version or a deletion) at the point
    oldest: datetime | None = None  # when S3 wrote its first version


def decide(line: Timeline, window: Window, compare_backup: bool) -> Decision:
    """One object's action. ``compare_backup``: the target holds the latest backed-up state, so
    a key whose state at the point is that state needs nothing."""
    if not line.versions:
        return Decision(UNKNOWN)
    state = line.at(window.point)
    known, oldest = state is not None, line.versions[0].modified
    live = state if state is not None and not state.deleted else None
    if window.end is not None:
        if not line.changed(window.point, window.end):
            return Decision(UNCHANGED, known=known, oldest=oldest)
        if line.changed(window.end):
            return Decision(LATER, line.stored, known, oldest)
    if compare_backup and _same(live, line.latest):
        return Decision(UNCHANGED, known=known, oldest=oldest)
    if live is not None:
        return Decision(PUT, live, known, oldest)
    return Decision(DELETE, line.stored, known, oldest)


def _same(state: Version | None, latest: Version | None) -> bool:
    """Whether the state at the point is the latest backed-up one (bodies by ETag)."""
    if latest is None or latest.deleted:
        return state is None
    if state is None:
        return False
    return state.version_id == latest.version_id or (bool(state.etag) and state.etag == latest.etag)


@dataclass(frozen=True)
class Planned:
    """One object to roll back: its decision, and its key when known before reading (--keys)."""

    decision: Decision
    key: Key | None = None


def plan(
    versions: Sequence[Version], bucket: str, window: Window, compare_backup: bool
) -> Decision:
    """The decision for one object's versions (newest first), reading change times as needed."""
    line = timeline(versions, bucket, window.point, window.horizon)
    return decide(line, window, compare_backup)


@dataclass
class Rollback:
    """One rollback's settings, shared by its pages."""

    folder: S3Location
    target: Table
    schema: KeySchema
    writer: TableWriter
    compare_table: bool  # read the target's items and drop what already matches
    dry_run: bool = False
    show: bool = False
    records: list[str] = field(default_factory=list)


@dataclass
class _Work:
    action: str
    key: Key
    item: Item | None = None


def carry_out(rollback: Rollback, chunk: Sequence[Planned]) -> dict[str, int]:
    """Do (or, in a dry run, count) what ``chunk`` decided; counts by action, plus failed."""
    counts = dict.fromkeys(COUNTS, 0)
    actionable = [p for p in chunk if p.decision.action in (PUT, DELETE, LATER)]
    work = _with_keys(rollback, actionable)
    for planned in chunk:
        if planned.decision.action in (UNCHANGED, UNKNOWN):
            counts[planned.decision.action] += 1
    counts[UNKNOWN] += len(actionable) - len(work)  # no stored version says what key it is
    for item in work:
        if item.action == LATER:
            counts[CHANGED_AFTER] += 1
            _record(rollback, LATER, item.key)
    todo = _not_matching(rollback, [w for w in work if w.action != LATER])
    counts[UNCHANGED] += sum(1 for w in work if w.action != LATER) - len(todo)
    failed = _write(rollback, todo)
    for item in todo:
        if item.key.canonical not in failed:
            counts[item.action] += 1
            if rollback.show:
                _record(rollback, item.action, item.key)
    counts["failed"] = len(failed)
    return counts


def _with_keys(rollback: Rollback, chunk: Sequence[Planned]) -> list[_Work]:
    """The chunk's actions with their keys (and items to put), reading the versions needed;
    an action whose key cannot be learnt (no stored version) is dropped: unknown."""

    def one(planned: Planned) -> _Work | None:
        decision, version = planned.decision, planned.decision.version
        if decision.action != PUT and planned.key is not None:
            return _Work(decision.action, planned.key)
        if version is None:
            return None
        item = read_version(version, rollback.folder.bucket)
        where = f"s3://{rollback.folder.bucket}/{version.key}"
        key = fitting_key(item, rollback.schema, where)
        return _Work(decision.action, key, item if decision.action == PUT else None)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return [w for w in pool.map(one, chunk) if w is not None]


def _not_matching(rollback: Rollback, work: list[_Work]) -> list[_Work]:
    """The actions that would change the target (all of them when it is not compared)."""
    if not rollback.compare_table or not work:
        return work
    current = dynamo.batch_get(rollback.target, [w.key for w in work], consistent=True)

    def needed(item: _Work) -> bool:
        if item.key.canonical in current.failed:
            return True  # unreadable: write it (puts and deletes are idempotent)
        found = current.found.get(item.key.canonical)
        return found is not None if item.action == DELETE else not items_equal(found, item.item)

    return [w for w in work if needed(w)]


def _write(rollback: Rollback, todo: list[_Work]) -> dict[str, Any]:
    if rollback.dry_run or not todo:
        return {}
    puts = [w.item for w in todo if w.action == PUT and w.item is not None]
    deletes = [w.key for w in todo if w.action == DELETE]
    failures = rollback.writer.write(puts, deletes)
    for canonical, failure in failures.items():
        reason = failure.reason
        rollback.records.append(
            json.dumps({"failed": json.loads(canonical), "reason": reason}, sort_keys=True)
        )
    return failures


def _record(rollback: Rollback, action: str, key: Key) -> None:
    rollback.records.append(json.dumps({"action": action, "key": key.wire}, sort_keys=True))


def oldest_record(decisions: Iterable[Decision]) -> list[str]:
    """A record of the oldest version among ``decisions`` (the command keeps the minimum)."""
    times = [d.oldest for d in decisions if d.oldest is not None]
    return [json.dumps({"oldest": min(times).isoformat()})] if times else []
