"""The pipelines file: parsed into frozen pipelines; every problem reported with its line."""

from __future__ import annotations

import pytest

from tasks.core.errors import ConfigurationError
from tasks.core.pipelines import Pipeline, parse


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigurationError) as caught:
        parse(text, "fleet.toml")
    return str(caught.value).splitlines()


def test_defaults_are_inherited_and_pipelines_keep_their_line() -> None:
    text = """
[defaults]
start = "latest"
skip_ttl_deletes = true

[[pipeline]]
name = "orders"
primary = "us-east-1/orders"
replica = "eu-west-1/orders"

[[pipeline]]
name = "carts"
primary = "us-east-1/carts"
backup = "s3://dr-bucket/tables"
kinesis_stream = "carts-changes"
start = "trim-horizon"
"""
    parsed = parse(text, "fleet.toml")
    orders, carts = parsed.pipelines
    assert orders == Pipeline(
        name="orders",
        primary="us-east-1/orders",
        replica="eu-west-1/orders",
        start="latest",
        skip_ttl_deletes=True,
    )
    assert (orders.line, carts.line) == (6, 11)
    assert carts.start == "trim-horizon" and carts.kinesis_stream == "carts-changes"
    with pytest.raises(AttributeError):
        orders.name = "other"  # type: ignore[misc]


def test_every_problem_is_reported_together_with_its_line() -> None:
    text = """[[pipeline]]
name = "orders"
primary = "us-east-1/orders"
replica = "eu-west-1/orders"
colour = "blue"

[[pipeline]]
name = "lonely"
primary = "us-east-1/lonely"

[[pipeline]]
name = "orders"
primary = "us-east-1/orders-2"
replica = "eu-west-1/orders-2"
readers = 4
turnover_role = "after"
"""
    assert problems(text) == [
        "fleet.toml:5: pipeline 'orders': unknown key 'colour'",
        "fleet.toml:7: pipeline 'lonely': give a replica and/or a backup",
        "fleet.toml:11: pipeline 'orders': the name is taken by the pipeline at line 1",
        "fleet.toml:15: pipeline 'orders': unknown key 'readers' "
        "(a process option: a flag of python -m producer)",
        "fleet.toml:16: pipeline 'orders': turnover_role and turnover_at go together",
    ]


def test_bad_values_and_sections() -> None:
    text = """colour = 1
[[pipeline]]
name = "x1"
primary = "nowhere"
backup = "s3://b/p"
page_limit = "many"
start = "yesterday-ish"

[[discover]]
replica = "eu-west-1/copy"
"""
    found = problems(text)
    assert found[0] == "fleet.toml:1: file: unknown section or key 'colour'"
    assert found[1].startswith("fleet.toml:4: pipeline 'x1': primary: invalid table location")
    assert found[2].startswith("fleet.toml:5: pipeline 'x1': backup: invalid S3 location")
    assert found[3] == "fleet.toml:6: pipeline 'x1': page_limit must be an integer, not 'many'"
    assert found[4].startswith("fleet.toml:7: pipeline 'x1': start:")
    assert found[5:] == [
        "fleet.toml:9: discover: give a pattern and/or tags to select tables",
        'fleet.toml:9: discover: primary is missing (where to list: "REGION/{table}")',
    ]


def test_a_syntax_error_names_its_line() -> None:
    (line,) = problems('[[pipeline]]\nname = "a"\nprimary = \n')
    assert line.startswith("fleet.toml: not valid TOML:") and "line 3" in line


def test_a_discover_rule_templates_its_targets() -> None:
    text = """
[defaults]
backup = "s3://dr-bucket/dr/"

[[discover]]
pattern = "billing-*"
tags = { replicate = "yes" }
primary = "us-east-1/{table}"
replica = "eu-west-1/{table}-copy"
"""
    (rule,) = parse(text).discover
    assert (rule.pattern, dict(rule.tags), rule.line) == ("billing-*", {"replicate": "yes"}, 5)
    made = rule.pipeline("billing-eu")
    assert (made.name, made.primary, made.replica, made.backup, made.origin) == (
        "billing-eu",
        "us-east-1/billing-eu",
        "eu-west-1/billing-eu-copy",
        "s3://dr-bucket/dr/",
        "discover",
    )


def test_credentials_are_refused_per_pipeline_with_a_hint() -> None:
    (line,) = problems(
        '[[pipeline]]\nname = "a"\nprimary = "us-east-1/orders"\nreplica = "eu-west-1/orders"\n'
        'replica_role_arn = "arn:aws:iam::1:role/r"\n'
    )
    assert line.startswith("fleet.toml:5: pipeline 'a': unknown key 'replica_role_arn' (cred")
    assert "the workers use their own" in line
