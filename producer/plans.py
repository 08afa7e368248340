"""From a pipeline (a ``[[pipeline]]`` of the file, or the single-table flags) to what runs.

``plan`` turns a ``Pipeline`` into the table handles, targets, start position and filter that a
``Poller`` takes; ``source`` opens its change stream; ``check`` reaches every table and stream.
``resolve`` expands the file's ``[[discover]]`` rules (ListTables, then ListTagsOfResource for
the tables whose name matches) into pipelines: a table that an explicit pipeline already reads
is left to it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from producer.enqueue import Target
from producer.filters import RecordFilter
from producer.sources import Position, Source
from producer.sources.dynamodb_streams import DynamoDBStreamsSource
from producer.sources.kinesis import KinesisSource
from tasks.aws import definitions, dynamo, permissions
from tasks.core.config import settings
from tasks.core.errors import ConfigurationError, ReplicatorError
from tasks.core.locations import REPLICA, Table, parse_s3
from tasks.core.pipelines import TEMPLATE, Discover, Pipeline, PipelinesFile
from tasks.core.times import parse_time
from tasks.core.transform import TransformSpec
from tasks.core.transform import load as load_transform

CHECKS_AT_ONCE = 8


@dataclass(frozen=True)
class Plan:
    pipeline: Pipeline
    primary: Table
    targets: tuple[Target, ...]
    start: Position
    record_filter: RecordFilter

    def consumer(self, source: Source) -> str:
        """The checkpoint name: given, or derived from the stream and the targets."""
        return self.pipeline.checkpoint or "|".join(
            [source.stream_id, *(t.name for t in self.targets)]
        )


def start_position(text: str) -> tuple[Position, float | None]:
    lowered = text.lower()
    if lowered in ("trim-horizon", "trim_horizon"):
        return Position("TRIM_HORIZON"), None
    if lowered == "latest":
        return Position("LATEST"), None
    moment = parse_time(text)
    return Position("AT_TIMESTAMP", timestamp=moment), moment


def plan(pipeline: Pipeline) -> Plan:
    cfg = settings()
    targets = []
    if pipeline.replica:
        targets.append(Target.replica(cfg.location(pipeline.replica), shape(pipeline)))
    if pipeline.backup:
        targets.append(Target.backup(parse_s3(pipeline.backup)))
    start, not_before = start_position(pipeline.start)
    turnover_at = parse_time(pipeline.turnover_at) if pipeline.turnover_at else None
    record_filter = RecordFilter(
        pipeline.turnover_role, turnover_at, pipeline.skip_ttl_deletes, not_before
    )
    return Plan(pipeline, cfg.table(pipeline.primary), tuple(targets), start, record_filter)


def shape(pipeline: Pipeline) -> TransformSpec:
    """The pipeline's transform, with the primary's TTL attribute for ``skip_expired``."""
    spec = pipeline.transform
    if spec.skip_expired and not spec.ttl_attribute:
        ttl = definitions.describe(settings().table(pipeline.primary)).ttl_attribute
        if not ttl:
            raise ConfigurationError(f"skip_expired: {pipeline.primary} has no TTL attribute")
        spec = replace(spec, ttl_attribute=ttl)
    return spec


def source(plan: Plan) -> Source:
    if plan.pipeline.kinesis_stream:
        return KinesisSource(plan.primary, plan.pipeline.kinesis_stream)
    return DynamoDBStreamsSource(plan.primary, plan.pipeline.stream_arn)


def check(plan: Plan) -> Source:
    """Reach the primary, the replica (same key schema) and the stream; load the transform; the
    opened source."""
    replica = settings().table(plan.pipeline.replica, REPLICA) if plan.pipeline.replica else None
    kinesis = plan.pipeline.kinesis_stream
    needs = permissions.Target(plan.primary, replica, None, kinesis)
    schema = permissions.after("producer", needs, lambda: dynamo.describe(plan.primary)).schema
    for target in plan.targets:
        if not target.transform.empty:
            load_transform(target.transform, schema.names)
    if replica is not None:
        dynamo.same_schema(plan.primary, replica)
    opened = source(plan)
    opened.shards()
    return opened


def resolve(file: PipelinesFile) -> list[Pipeline]:
    """The file's pipelines, then one per table each discover rule selects."""
    found = list(file.pipelines)
    taken = {settings().location(p.primary) for p in found}
    names = {p.name for p in found}
    problems = []
    for rule in file.discover:
        for pipeline in discovered(rule):
            if settings().location(pipeline.primary) in taken:
                continue
            if pipeline.name in names:
                problems.append(
                    f"{file.path}:{rule.line}: discover: table {pipeline.primary} makes a "
                    f"pipeline named {pipeline.name!r}, a name already taken"
                )
            taken.add(settings().location(pipeline.primary))
            names.add(pipeline.name)
            found.append(pipeline)
    if problems:
        raise ConfigurationError("\n".join(problems))
    return found


def discovered(rule: Discover) -> list[Pipeline]:
    """The pipelines a discover rule makes of the tables it selects now."""
    where = settings().table(rule.template.primary.replace(TEMPLATE, "listing"))
    names = [
        n for n in dynamo.table_names(where) if not rule.pattern or fnmatch.fnmatch(n, rule.pattern)
    ]
    selected = []
    for name in sorted(names):
        pipeline = rule.pipeline(name)
        if rule.tags:
            tags = dynamo.tags(settings().table(pipeline.primary))
            if any(tags.get(k) != v for k, v in rule.tags.items()):
                continue
        selected.append(pipeline)
    return selected


def check_all(pipelines: Iterable[Pipeline], path: str) -> list[str]:
    """Every problem reaching the pipelines' tables and streams, each with its line (a few
    pipelines at once: each check is four calls or so, 40 ms each across regions)."""
    with ThreadPoolExecutor(CHECKS_AT_ONCE, thread_name_prefix="check") as pool:
        found = pool.map(lambda p: _problem(p, path), pipelines)
        return [problem for problem in found if problem]


def _problem(pipeline: Pipeline, path: str) -> str | None:
    try:
        check(plan(pipeline))
    except ReplicatorError as exc:
        return f"{path}:{pipeline.line}: {where(pipeline)}: {exc}"
    return None


def where(pipeline: Pipeline) -> str:
    if pipeline.origin == "discover":
        return f"pipeline {pipeline.name!r} (discovered)"
    return f"pipeline {pipeline.name!r}"
