"""The pipelines file: many table pairs served by one deployment (TOML, read with ``tomllib``).

::

    [defaults]                      # every pipeline and discover rule inherits these
    start = "trim-horizon"

    [[pipeline]]
    name = "orders"
    primary = "us-east-1/orders"
    replica = "eu-west-1/orders"    # and/or backup = "s3://bucket/dr/"
    kinesis_stream = "orders-changes"   # or stream_arn; default: the table's latest stream

    [[discover]]                    # tables selected by name pattern and/or tags
    pattern = "billing-*"
    tags = { replicate = "yes" }
    primary = "us-east-1/{table}"   # where to list (and the table); "{table}" is the match
    replica = "eu-west-1/{table}"

``load`` parses and checks the file without reaching AWS: every problem is collected, each with
its line and the pipeline it belongs to, and raised together as one ``ConfigurationError``.
``Pipeline`` is frozen; a pipeline's options are the keys of ``PIPELINE_KEYS`` (a later option,
such as the ``transform`` and ``verify`` tables, is one more entry there and one more field).
tomllib reports positions for syntax errors only, so ``_positions`` finds the line of each
``[[pipeline]]`` / ``[[discover]]`` header and of each key by scanning the text.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tasks.core.config import settings
from tasks.core.errors import ConfigurationError, InvalidInputError
from tasks.core.locations import parse_s3
from tasks.core.times import parse_time
from tasks.core.transform import TransformSpec
from tasks.verify.settings import VerifySettings

TEMPLATE = "{table}"
STARTS = ("trim-horizon", "trim_horizon", "latest")
TURNOVER_ROLES = ("before", "after")
# Options of the whole process, not of one pipeline: flags / environment of `python -m producer`.
PROCESS_KEYS = ("readers", "lease_seconds", "poll_interval", "metrics_port", "metrics_address")
# Credentials are per side and process: the workers read the primary and write the replica with
# their own, so a pipeline's own profile or role could not reach them.
CREDENTIAL_KEYS = tuple(
    f"{side}_{what}" for side in ("primary", "replica") for what in ("profile", "role_arn")
)


@dataclass(frozen=True)
class Pipeline:
    """One table pair: a primary's change stream feeding a replica and/or a backup."""

    name: str
    primary: str
    replica: str | None = None
    backup: str | None = None
    stream_arn: str | None = None
    kinesis_stream: str | None = None
    start: str = "trim-horizon"
    turnover_role: str | None = None
    turnover_at: str | None = None
    skip_ttl_deletes: bool = False
    page_limit: int = 1000
    checkpoint: str | None = None  # the checkpoint name (default: the stream and targets)
    transform: TransformSpec = field(default_factory=TransformSpec)  # what the replica holds
    verify: VerifySettings = field(default_factory=VerifySettings)  # `replicator verify`'s
    line: int = field(default=0, compare=False)  # where the file defines it
    origin: str = field(default="pipeline", compare=False)  # or "discover"


# key -> accepted Python types (bool is an int to Python: listed apart)
PIPELINE_KEYS: dict[str, tuple[type, ...]] = {
    f.name: (bool,)
    if f.name == "skip_ttl_deletes"
    else (int,)
    if f.name == "page_limit"
    else (dict,)
    if f.name in ("transform", "verify")
    else (str,)
    for f in fields(Pipeline)
    if f.name not in ("line", "origin")
}
DISCOVER_KEYS: dict[str, tuple[type, ...]] = {
    **{k: v for k, v in PIPELINE_KEYS.items() if k not in ("stream_arn", "kinesis_stream")},
    "pattern": (str,),
    "tags": (dict,),
}
DEFAULT_KEYS = {k: v for k, v in DISCOVER_KEYS.items() if k not in ("name", "pattern", "tags")}
SECTIONS = ("defaults", "pipeline", "discover")
_HINTS = {
    **{key: " (a process option: a flag of python -m producer)" for key in PROCESS_KEYS},
    **{
        key: " (credentials are per side for every process: --primary-profile, "
        "REPLICATOR_PRIMARY_ROLE_ARN, ...; the workers use their own)"
        for key in CREDENTIAL_KEYS
    },
}
_KINDS = {str: "a string", int: "an integer", bool: "true or false", dict: "a table"}


@dataclass(frozen=True)
class Discover:
    """A rule that makes a pipeline of every table matching ``pattern`` and ``tags``."""

    template: Pipeline  # its strings may hold "{table}"
    pattern: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    line: int = 0

    def pipeline(self, table: str) -> Pipeline:
        values = {k: v.replace(TEMPLATE, table) for k, v in _strings(self.template).items()}
        return replace(self.template, **values)


@dataclass(frozen=True)
class PipelinesFile:
    path: str
    pipelines: tuple[Pipeline, ...]
    discover: tuple[Discover, ...]


@dataclass
class _Section:
    kind: str
    line: int
    keys: dict[str, int] = field(default_factory=dict)


@dataclass
class _Problems:
    path: str
    found: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int, where: str, message: str) -> None:
        self.found.append((line, f"{self.path}:{line}: {where}: {message}"))

    def raise_any(self) -> None:
        """One ConfigurationError with every problem, in the order of the file."""
        if self.found:
            raise ConfigurationError("\n".join(text for _, text in sorted(self.found)))


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\"|'[^']*')\s*[.=]")


def _positions(text: str) -> dict[str, list[_Section]]:
    """The line of each section header and of each key in it (a light scan, not a parser)."""
    found: dict[str, list[_Section]] = {kind: [] for kind in ("", *SECTIONS)}
    current = _Section("", 1)
    found[""].append(current)
    for number, raw in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(raw)
        if header:
            name = header.group(2).strip().strip("\"'")
            if name in SECTIONS:
                current = _Section(name, number)
                found[name].append(current)
            elif name.split(".")[0] not in SECTIONS:  # an unknown section: keep its line
                current = _Section("", number)
                found[""].append(current)
                found[""][0].keys.setdefault(name.split(".")[0], number)
            continue
        key = _KEY.match(raw)
        if key:
            current.keys.setdefault(key.group(1).strip("\"'"), number)
    return found


def load(path: str | Path) -> PipelinesFile:
    """Parse and check the file; ConfigurationError listing every problem with its line."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the pipelines file {name}: {exc}") from exc
    return parse(text, name)


def parse(text: str, path: str = "<pipelines>") -> PipelinesFile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from exc
    where = _positions(text)
    problems = _Problems(path)
    top = where[""][0]
    for key in data:
        if key not in SECTIONS:
            problems.add(top.keys.get(key, 1), "file", f"unknown section or key {key!r}")
    defaults = _defaults(data.get("defaults", {}), where["defaults"], problems)
    pipelines = [
        _pipeline(raw, _nth(where["pipeline"], i), defaults, problems)
        for i, raw in enumerate(_tables(data, "pipeline", problems))
    ]
    rules = [
        _discover(raw, _nth(where["discover"], i), defaults, problems)
        for i, raw in enumerate(_tables(data, "discover", problems))
    ]
    _unique(pipelines, problems)
    problems.raise_any()
    return PipelinesFile(path, tuple(pipelines), tuple(rules))


def _nth(sections: list[_Section], index: int) -> _Section:
    return sections[index] if index < len(sections) else _Section("?", 0)


def _tables(data: Mapping[str, Any], kind: str, problems: _Problems) -> list[dict[str, Any]]:
    raw = data.get(kind, [])
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        problems.add(1, "file", f"{kind} must be written [[{kind}]] (an array of tables)")
        return []
    return raw


def _defaults(raw: Any, sections: list[_Section], problems: _Problems) -> dict[str, Any]:
    if not isinstance(raw, dict):
        problems.add(1, "defaults", "must be a table: [defaults]")
        return {}
    section = _nth(sections, 0)
    return _typed(raw, DEFAULT_KEYS, section, "defaults", problems)


def _typed(
    raw: Mapping[str, Any],
    allowed: Mapping[str, tuple[type, ...]],
    section: _Section,
    where: str,
    problems: _Problems,
) -> dict[str, Any]:
    """The known keys of well-typed values; every other key is a problem at its line."""
    kept: dict[str, Any] = {}
    for key, value in raw.items():
        line = section.keys.get(key, section.line)
        if key not in allowed:
            hint = _HINTS.get(key, "")
            problems.add(line, where, f"unknown key {key!r}{hint}")
        elif not isinstance(value, allowed[key]) or (
            isinstance(value, bool) and bool not in allowed[key]
        ):
            kind = _KINDS[allowed[key][0]]
            problems.add(line, where, f"{key} must be {kind}, not {value!r}")
        elif key == "transform":
            try:
                kept[key] = TransformSpec.from_file(value if isinstance(value, dict) else {})
            except ConfigurationError as exc:
                problems.add(line, where, f"transform: {exc}")
        elif key == "verify":
            try:
                kept[key] = VerifySettings.from_file(value if isinstance(value, dict) else {})
            except ConfigurationError as exc:
                problems.add(line, where, f"verify: {exc}")
        else:
            kept[key] = value
    return kept


def _pipeline(
    raw: Mapping[str, Any], section: _Section, defaults: Mapping[str, Any], problems: _Problems
) -> Pipeline:
    name = raw.get("name")
    where = f"pipeline {name!r}" if isinstance(name, str) else "pipeline"
    values = {**defaults, **_typed(raw, PIPELINE_KEYS, section, where, problems)}
    for key in ("name", "primary"):
        if not values.get(key):
            problems.add(section.line, where, f"{key} is missing")
    pipeline = _build(values, section.line, "pipeline")
    _check(pipeline, section, where, problems)
    return pipeline


def _discover(
    raw: Mapping[str, Any], section: _Section, defaults: Mapping[str, Any], problems: _Problems
) -> Discover:
    where = "discover"
    values = {"name": TEMPLATE, **defaults}
    values |= _typed(raw, DISCOVER_KEYS, section, where, problems)
    pattern, tags = values.pop("pattern", None), values.pop("tags", {})
    if "primary" not in values:
        problems.add(section.line, where, 'primary is missing (where to list: "REGION/{table}")')
    if pattern is None and not tags:
        problems.add(section.line, where, "give a pattern and/or tags to select tables")
    bad_tags = [k for k, v in tags.items() if not isinstance(v, str)]
    if bad_tags:
        problems.add(section.keys.get("tags", section.line), where, "tag values must be strings")
    for key in ("name", "primary"):
        if TEMPLATE not in values.get(key, TEMPLATE):
            problems.add(section.keys.get(key, section.line), where, f"{key} must hold {TEMPLATE}")
    template = _build(values, section.line, "discover")
    _check(replace(template, **_sample(template)), section, where, problems)
    return Discover(template, pattern, dict(tags), section.line)


def _strings(pipeline: Pipeline) -> dict[str, Any]:
    """The options that are strings (where a discover template may hold "{table}")."""
    values = {f.name: getattr(pipeline, f.name) for f in fields(Pipeline) if f.name != "origin"}
    return {k: v for k, v in values.items() if isinstance(v, str)}


def _sample(pipeline: Pipeline) -> dict[str, Any]:
    """A discover template with a sample table name, to check what it would make."""
    return {k: v.replace(TEMPLATE, "table") for k, v in _strings(pipeline).items()}


def _build(values: Mapping[str, Any], line: int, origin: str) -> Pipeline:
    known = {k: v for k, v in values.items() if k in PIPELINE_KEYS}
    return Pipeline(**{"name": "", "primary": "", **known}, line=line, origin=origin)


def _check(pipeline: Pipeline, section: _Section, where: str, problems: _Problems) -> None:
    """What can be told wrong without reaching AWS, each at the line of its key."""

    def at(key: str) -> int:
        return section.keys.get(key, section.line)

    if not pipeline.replica and not pipeline.backup:
        problems.add(section.line, where, "give a replica and/or a backup")
    if pipeline.stream_arn and pipeline.kinesis_stream:
        problems.add(at("kinesis_stream"), where, "give stream_arn or kinesis_stream, not both")
    if bool(pipeline.turnover_role) != bool(pipeline.turnover_at):
        problems.add(at("turnover_role"), where, "turnover_role and turnover_at go together")
    if pipeline.turnover_role and pipeline.turnover_role not in TURNOVER_ROLES:
        problems.add(at("turnover_role"), where, "turnover_role is 'before' or 'after'")
    if not 1 <= pipeline.page_limit <= 10000:
        problems.add(at("page_limit"), where, "page_limit must be between 1 and 10000")
    _check_values(pipeline, at, where, problems)


def _check_values(
    pipeline: Pipeline, at: Callable[[str], int], where: str, problems: _Problems
) -> None:
    """Locations, the backup URL and times parse."""
    checks: list[tuple[str, Any]] = [
        ("primary", settings().location),
        ("replica", settings().location),
        ("backup", parse_s3),
        ("turnover_at", parse_time),
    ]
    if pipeline.start.lower() not in STARTS:
        checks.append(("start", parse_time))
    for key, parse in checks:
        value = getattr(pipeline, key)
        if value:
            try:
                parse(value)
            except (ConfigurationError, InvalidInputError, ValueError) as exc:
                problems.add(at(key), where, f"{key}: {exc}")


def _unique(pipelines: list[Pipeline], problems: _Problems) -> None:
    first: dict[str, Pipeline] = {}
    for pipeline in pipelines:
        if pipeline.name in first:
            problems.add(
                pipeline.line,
                f"pipeline {pipeline.name!r}",
                f"the name is taken by the pipeline at line {first[pipeline.name].line}",
            )
        first.setdefault(pipeline.name, pipeline)
