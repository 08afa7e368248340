"""`replicator pipelines check|list FILE`: the pipelines file, checked and resolved."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click

from cli.exits import handle_errors
from cli.options import common_options, setup
from producer import plans
from tasks.core import pipelines as pipelines_file
from tasks.core.errors import ConfigurationError
from tasks.core.pipelines import Pipeline

FILE = click.argument("path", metavar="FILE", envvar="REPLICATOR_CONFIG", type=click.Path())


@click.group("pipelines")
def pipelines() -> None:
    """The pipelines file: check it, list what it resolves to."""


@pipelines.command("check")
@common_options
@FILE
@handle_errors
def check(path: str, **params: Any) -> None:
    """Check FILE and reach every table and stream it names; start nothing.

    Every problem is printed with its line; exit 2 when there is any.
    """
    setup(params)
    resolved = _resolved(path)
    problems = plans.check_all(resolved, path)
    if problems:
        raise ConfigurationError("\n".join(problems))
    click.echo(f"[ok] {len(resolved)} pipelines")


@pipelines.command("list")
@common_options
@FILE
@click.option("--json", "as_json", is_flag=True, help="One JSON object per pipeline and line.")
@handle_errors
def list_(path: str, as_json: bool, **params: Any) -> None:
    """The pipelines FILE runs now: its own and those its discover rules select."""
    setup(params)
    for pipeline in _resolved(path):
        if as_json:
            click.echo(json.dumps(_row(pipeline), sort_keys=True, separators=(",", ":")))
        else:
            targets = " ".join(t for t in (pipeline.replica, pipeline.backup) if t)
            origin = f"{plans.where(pipeline)}, line {pipeline.line}"
            click.echo(f"{pipeline.name}\t{pipeline.primary} -> {targets}\t({origin})")


def _resolved(path: str) -> list[Pipeline]:
    return plans.resolve(pipelines_file.load(path))


def _row(pipeline: Pipeline) -> dict[str, Any]:
    return {k: v for k, v in asdict(pipeline).items() if v is not None}
