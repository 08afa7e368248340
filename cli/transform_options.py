"""The transform flags every command that writes or compares a replica takes, in one place.

``--exclude-attributes a,b``, ``--rename-attribute old=new`` (repeatable), ``--filter EXPR``
(JMESPath over the plain item), ``--skip-expired`` (the primary's TTL attribute) and
``--transform module:function``: one ``TransformSpec`` (``tasks.core.transform``), checked before
anything starts (a bad one: one ``error:`` line, exit 2).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import click

from cli.options import _apply
from tasks.aws import definitions
from tasks.core.errors import ConfigurationError
from tasks.core.locations import Table
from tasks.core.transform import TransformSpec, load


def transform_options(func: Any) -> Any:
    options = [
        click.option(
            "--exclude-attributes",
            metavar="A,B",
            help="Attributes the replica never receives (comma-separated).",
        ),
        click.option(
            "--rename-attribute",
            "rename_attributes",
            multiple=True,
            metavar="OLD=NEW",
            help="An attribute the replica receives under another name (repeatable).",
        ),
        click.option(
            "--filter",
            "filter_expression",
            metavar="EXPR",
            help="Keep only items for which this JMESPath expression is true "
            "(e.g. \"kind != 'internal'\"); an item that stops matching leaves the replica.",
        ),
        click.option(
            "--skip-expired",
            is_flag=True,
            help="Items whose TTL attribute lies in the past are absent (TTL deletes can lag).",
        ),
        click.option(
            "--transform",
            "transform_callable",
            metavar="MODULE:FUNCTION",
            help="A Python function, item in, item or None out, applied last (installed on "
            "every worker).",
        ),
    ]
    return _apply(options)(func)


def spec_from_flags(params: dict[str, Any]) -> TransformSpec:
    """The TransformSpec the flags give (taken out of ``params``), not checked yet."""
    exclude = params.pop("exclude_attributes", None)
    renames = params.pop("rename_attributes", ())
    return TransformSpec(
        exclude=tuple(a.strip() for a in exclude.split(",") if a.strip()) if exclude else (),
        rename=tuple(_pair(text) for text in renames),
        filter=params.pop("filter_expression", None),
        skip_expired=bool(params.pop("skip_expired", False)),
        callable=params.pop("transform_callable", None),
    )


def transform_from(params: dict[str, Any], primary: Table) -> TransformSpec:
    """The TransformSpec of the flags (taken out of ``params``), loaded once to check it."""
    spec = spec_from_flags(params)
    if spec.empty:
        return spec
    described = definitions.describe(primary)
    if spec.skip_expired:
        if not described.ttl_attribute:
            raise ConfigurationError(f"--skip-expired: {primary} has no TTL attribute enabled")
        spec = replace(spec, ttl_attribute=described.ttl_attribute)
    load(spec, [k["AttributeName"] for k in described.key_schema])
    return spec


def _pair(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        raise ConfigurationError(f"--rename-attribute {text!r}: expected OLD=NEW")
    return old, new
