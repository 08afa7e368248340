"""``restore-table EXPORT TABLE``: a table from a DynamoDB export (its folder or its ARN).

A full export is restored, then the incremental exports of its table that follow it in the same
``PREFIX/AWSDynamoDB/`` folder, oldest first; ``--at T`` stops at the last that ends at or
before T. Each export is one bulk job over its data files (fanned out like every restore); the
next starts when it has ended, so a key changed by two exports ends as the later says.
An export records no key schema: ``--create`` takes the schema of the table the export was made
from when that table can be described, and otherwise says so (exit 2).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from commands.backup_common import Segments, finish, print_failed_key, run_job
from commands.bulk.spec import Outcome
from tasks.aws import dynamo
from tasks.backup import export
from tasks.backup.restore import prepare_target
from tasks.core.config import settings
from tasks.core.errors import InvalidInputError, NotFoundError, ReplicatorError
from tasks.core.locations import PRIMARY, S3Location, Table, parse_s3
from tasks.core.typed_json import KeySchema


def source_of(text: str) -> S3Location | None:
    """The export folder named by an S3 URL or an export's ARN; None when it is neither."""
    if text.startswith("arn:"):
        return _folder_of_arn(text)
    location = parse_s3(text)
    return location if export.is_export(location) else None


def _folder_of_arn(arn: str) -> S3Location:
    """DescribeExport's bucket and manifest: the export's folder."""
    try:
        region, table_part = arn.split(":")[3], arn.split(":", 5)[5]
        table_name = table_part.split("/")[1]
    except IndexError as exc:
        raise InvalidInputError(f"{arn} is not an export's ARN") from exc
    status = dynamo.describe_export(settings().table(f"{region}/{table_name}"), arn)
    if not status.manifest:
        raise InvalidInputError(f"export {arn} is {status.status}: it has no manifest yet")
    return S3Location(status.bucket, status.manifest.rsplit("/", 1)[0])


def restore_export(
    location: S3Location,
    target: Table,
    *,
    at: datetime | None,
    create: bool,
    rate: int | None,
    options: Segments,
    transform: dict[str, object] | None = None,
) -> None:
    """Restore the export (and the incremental exports after it) into ``target``."""
    first = export.read(location)
    applied = export.chain(first, until=at)
    existed = dynamo.exists(target)
    prepare_target(target, _source_schema(first) if create and not existed else None, create)
    outcomes = []
    for one in applied:
        params = {
            "source": str(one.location),
            "target": target.location.spec,
            "files": list(one.files),
            "rate": rate or 0,
            "schema": None,
            "layout": one.kind,
            "transform": transform,
        }
        outcome = run_job("restore-table", params, options, print_failed_key)
        outcomes.append(outcome)
        if outcome.failures or outcome.totals.get("failed"):
            break  # a later export must not be applied over a missing one
    finish(_combined(outcomes), _summary(applied, outcomes))


def _source_schema(made_from: export.Export) -> KeySchema:
    """The key schema of the table the export was made from, or InvalidInputError (exit 2)."""
    region = made_from.table_arn.split(":")[3]
    source = settings().table(f"{region}/{made_from.table_name}", PRIMARY)
    try:
        return dynamo.schema(source)
    except (NotFoundError, ReplicatorError) as exc:
        raise InvalidInputError(
            f"an export records no key schema, and {made_from.table_arn} (the table it was made "
            f"from) cannot be described ({exc}): create the target table first"
        ) from exc


def _combined(outcomes: list[Outcome]) -> Outcome:
    totals: Counter[str] = Counter()
    failures: dict[int, str] = {}
    for outcome in outcomes:
        totals.update(outcome.totals)
        failures.update(outcome.failures)
    last = outcomes[-1]
    seconds = sum(o.seconds for o in outcomes)
    return Outcome(last.job, dict(totals), failures, seconds, last.segments)


def _summary(applied: list[export.Export], outcomes: list[Outcome]) -> dict[str, object]:
    return {
        "exports": [e.arn for e in applied[: len(outcomes)]],
        "export_time": applied[len(outcomes) - 1].time.isoformat(),
        "files": sum(len(e.files) for e in applied[: len(outcomes)]),
    }
