"""``restore-table S3URL TABLE --at T``: a table, or some keys, as at T from an incremental backup.

The rollback an operator can trust:

1. Keys the backup never saw are left alone (``unknown``).
2. Into an existing table, a restore refuses, exit 2, when T precedes the backup's history
   (every key would be deleted: a typo in ``--at``), unless ``--before-history``. One listing
   page usually shows a version older than T; when it does not, a first pass lists the history
   (no reads, no writes) to know.
3. Only what differs is written: the state at T is compared with the latest backed-up state
   (restoring into the backed-up table itself) or with the target's items (any other existing
   table), so a rerun after a kill writes nothing twice.
4. ``--dry-run`` runs the same pass without writing: the counts (and with ``--show`` the keys)
   the real run would write. The real run's summary has the same fields, counted from what was
   written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

import click

from commands.backup_common import Segments, finish, print_failed_key, report, run_job
from commands.bulk.spec import Outcome
from tasks.aws import dynamo, s3
from tasks.backup.history import reaches_back_to
from tasks.backup.restore import prepare_target
from tasks.backup.rollback import COUNTS, Window
from tasks.backup.snapshot import recorded_schema
from tasks.core.errors import InvalidInputError
from tasks.core.keys import Key
from tasks.core.locations import S3Location, Table

COMPARE_CHOICES = ("auto", "backup", "table")


@dataclass(frozen=True)
class Request:
    """What the operator asked for (after parsing)."""

    source: S3Location
    target: Table
    window: Window
    key: str | None  # --key
    keys_file: TextIO | None  # --keys
    create: bool
    compare: str
    dry_run: bool
    show: bool
    before_history: bool
    rate: int | None
    transform: dict[str, Any] | None = None  # TransformSpec.to_params: write t(item)


@dataclass
class Printer:
    """Prints a rollback job's records as they come: the keys (``[put] KEY``), failures; keeps
    the oldest version seen."""

    quiet: bool = False
    oldest: datetime | None = None
    lines: list[str] = field(default_factory=list)

    def __call__(self, record: str) -> None:
        data = json.loads(record)
        if "oldest" in data:
            when = datetime.fromisoformat(data["oldest"])
            self.oldest = when if self.oldest is None else min(self.oldest, when)
        elif "action" in data and not self.quiet:
            key = json.dumps(data["key"], separators=(",", ":"), sort_keys=True)
            click.echo(f"[{data['action']}] {key}")
        elif not self.quiet:
            print_failed_key(record)


def keys_from(text: str | None, keys_file: TextIO | None, target: Table) -> list[Key] | None:
    """The keys of ``--key`` / ``--keys`` (checked against the target's schema), or None."""
    if text is None and keys_file is None:
        return None
    schema = dynamo.schema(target)
    keys = [Key.parse(text, schema)] if text else []
    if keys_file:
        keys += [Key.parse(line, schema) for line in keys_file if line.strip()]
    return list(dict.fromkeys(keys))


def restore_at(request: Request, options: Segments) -> None:
    """Plan, check and (unless a dry run) carry out the rollback; exits like every bulk job."""
    s3.require_versioning(request.source.bucket)
    existed = dynamo.exists(request.target)
    schema = recorded_schema(request.source) if request.create and not existed else None
    prepare_target(request.target, schema, request.create)
    keys = keys_from(request.key, request.keys_file, request.target)
    params = _params(request, existed, keys)
    check = existed and not request.before_history
    if check and not request.dry_run and not reaches_back_to(request.source, request.window.point):
        _refuse_before_history(request, _run({**params, "probe": True}, options, True))
    outcome, printer = _run(params, options)
    if check and request.dry_run:
        try:
            _refuse_before_history(request, (outcome, printer))
        except InvalidInputError:
            report(outcome, _summary(request, params, outcome))  # the plan, then the refusal
            raise
    finish(outcome, _summary(request, params, outcome))


def _params(request: Request, existed: bool, keys: list[Key] | None) -> dict[str, Any]:
    window = request.window
    params: dict[str, Any] = {
        "source": str(request.source),
        "target": request.target.location.spec,
        "point": window.point.isoformat(),
        "end": window.end.isoformat() if window.end else None,
        "compare": _compare(request, existed),
        "existed": existed,
        "dry_run": request.dry_run,
        "show": request.show,
        "rate": request.rate or 0,
        "transform": request.transform,
    }
    if keys is not None:
        params["keys"] = [k.canonical for k in keys]
    return params


def _compare(request: Request, existed: bool) -> str:
    """What the state at T is compared with: "backup" (its latest backed-up state: the target is
    the backed-up table) or "table" (the target's own items)."""
    if request.compare != "auto":
        return request.compare
    backed_up = request.source.prefix.rstrip("/").rsplit("/", 1)[-1]
    if existed and request.target.name == backed_up and _has_items(request.target):
        return "backup"
    return "table"


def _has_items(table: Table) -> bool:
    items, _ = next(dynamo.scan_pages(table, page_size=1))
    return bool(items)


def _kind(params: Mapping[str, Any]) -> str:
    return "restore-keys-at" if "keys" in params else "restore-table-at"


def _run(
    params: Mapping[str, Any], options: Segments, quiet: bool = False
) -> tuple[Outcome, Printer]:
    printer = Printer(quiet=quiet)
    return run_job(_kind(params), params, options, printer), printer


def _refuse_before_history(request: Request, run: tuple[Outcome, Printer]) -> None:
    """Exit 2 when keys have history but none had a state at the point (it precedes it)."""
    outcome, printer = run
    if outcome.failures:
        finish(outcome, {"phase": "history check"})
    totals = outcome.totals
    if totals.get("history", 0) and not totals.get("known", 0) and printer.oldest is not None:
        point = request.window.point.isoformat()
        raise InvalidInputError(
            f"{point} precedes the backup's history (its oldest version was written at "
            f"{printer.oldest.isoformat()}): every key it knows would be deleted; check the "
            "time, or give --before-history to restore as at then all the same"
        )


def _summary(request: Request, params: Mapping[str, Any], outcome: Outcome) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "at": (request.window.end or request.window.point).isoformat(),
        "compared_with": params["compare"],
        "dry_run": request.dry_run,
        **dict.fromkeys(COUNTS, 0),
    }
    if request.window.end is not None:
        extra["since"] = request.window.point.isoformat()
    if "keys" in params:
        extra["keys"] = len(params["keys"])
    return extra


def window_from(at: str, since: str | None, parse: Any) -> Window:
    """``--at T`` alone: undo every change after T. With ``--since T1``: undo the changes made
    after T1 up to T (they go back to their state at T1)."""
    moment = parse(at)
    if since is None:
        return Window(moment)
    start = parse(since)
    if start >= moment:
        raise InvalidInputError(f"--since {since} must come before --at {at}")
    return Window(start, moment)
