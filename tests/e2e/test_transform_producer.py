"""The producer through a transform: the flags, and a pipelines file's ``transform`` table, reach
the replica through the workers, and ``replicator status`` names the transform (the same identity
for the same definition, however given); a bad transform in the file is refused with its line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tasks.core.transform import TransformSpec
from tests.e2e.test_pipelines_cli import replicator
from tests.support.servers import wait_until
from tests.support.tables import client, create_table, scan_all


def _put(moto_url: str, key: str, kind: str) -> None:
    item = {"id": {"S": key}, "kind": {"S": kind}, "ssn": {"S": "1"}, "userId": {"S": "u"}}
    client(moto_url).put_item(TableName="primary", Item=item)


# What both tests define, by flags and by the file: the identity status must name.
IDENTITY = TransformSpec(
    exclude=("ssn",), rename=(("userId", "user_id"),), filter="kind != 'internal'"
).identity


def _tables(moto_url: str) -> None:
    create_table(moto_url, "primary", stream="KEYS_ONLY")
    create_table(moto_url, "replica")


def _expected(replica: dict[str, Any]) -> bool:
    return set(replica) == {'{"id":{"S":"a"}}'} and replica['{"id":{"S":"a"}}'] == {
        "id": {"S": "a"},
        "kind": {"S": "public"},
        "user_id": {"S": "u"},
    }


def test_the_producer_flags_shape_the_replica(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any
) -> None:
    _tables(moto_url)
    start_worker(concurrency=2)
    start_producer(
        "--primary",
        f"{moto_url}/primary",
        "--replica",
        f"{moto_url}/replica",
        "--exclude-attributes",
        "ssn",
        "--rename-attribute",
        "userId=user_id",
        "--filter",
        "kind != 'internal'",
    )
    _put(moto_url, "a", "public")
    _put(moto_url, "b", "public")
    wait_until(lambda: len(scan_all(moto_url, "replica")) == 2, 60, "both replicated")
    _put(moto_url, "b", "internal")  # stops matching: leaves the replica

    wait_until(lambda: _expected(scan_all(moto_url, "replica")), 60, "b gone, a reshaped")
    shown = replicator(env, "status", f"{moto_url}/replica")
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert len(IDENTITY) == 12 and summary["transform"] == IDENTITY, shown.stdout
    assert list(summary["streams"][0]["transforms"].values()) == [IDENTITY]


def test_a_pipelines_file_transform_and_its_errors(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any, tmp_path: Path
) -> None:
    _tables(moto_url)
    shape = '{ exclude_attributes = ["ssn"], rename_attributes = { userId = "user_id" }, '
    shape += "filter = \"kind != 'internal'\" }"
    path = tmp_path / "fleet.toml"
    path.write_text(
        f"""
[[pipeline]]
name = "shaped"
primary = "{moto_url}/primary"
replica = "{moto_url}/replica"
transform = {shape}
"""
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(
        f"""
[[pipeline]]
name = "broken"
primary = "{moto_url}/primary"
replica = "{moto_url}/replica"

transform = {{ filter = "kind == " }}
"""
    )
    start_worker(concurrency=2)
    start_producer("--config", str(path))
    _put(moto_url, "a", "public")
    _put(moto_url, "b", "internal")

    wait_until(lambda: _expected(scan_all(moto_url, "replica")), 60, "a reshaped, b left out")
    header, row = replicator(env, "status").stdout.splitlines()
    assert header.split()[:2] == ["pipeline", "transform"]
    assert row.split()[:2] == ["shaped", IDENTITY], row
    refused = replicator(env, "pipelines", "check", str(bad))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"{bad}:2" in refused.stderr and "--filter" in refused.stderr
    listed = replicator(env, "pipelines", "list", str(path), "--json")
    assert listed.returncode == 0, listed.stderr
    assert "kind != 'internal'" in json.dumps([json.loads(x) for x in listed.stdout.splitlines()])
