"""`replicator pipelines check|list FILE` against moto: discovery by pattern and tag, and a bad
file refused whole, each problem with its line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.servers import ROOT
from tests.support.tables import client, create_table


def replicator(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from commands.replicator import main; main()", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def tag(moto_url: str, table: str, **tags: str) -> None:
    ddb = client(moto_url)
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def test_discovery_by_pattern_and_by_tag(
    env: dict[str, str], moto_url: str, tmp_path: Path
) -> None:
    for name in ("billing-eu", "billing-us", "orders", "carts", "audit"):
        create_table(moto_url, name, stream="NEW_AND_OLD_IMAGES")
    tag(moto_url, "orders", replicate="yes")
    tag(moto_url, "carts", replicate="no")
    tag(moto_url, "billing-us", replicate="no")
    path = tmp_path / "fleet.toml"
    path.write_text(
        f"""
[defaults]
backup = "s3://dr-bucket/dr/"

[[pipeline]]
name = "audit-copy"
primary = "{moto_url}/audit"
replica = "{moto_url}/audit-copy"

[[discover]]
pattern = "billing-*"
primary = "{moto_url}/{{table}}"

[[discover]]
name = "tagged-{{table}}"
tags = {{ replicate = "yes" }}
primary = "{moto_url}/{{table}}"
replica = "{moto_url}/{{table}}-copy"
"""
    )
    result = replicator(env, "pipelines", "list", str(path), "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["name"], r["primary"], r.get("replica"), r["line"]) for r in rows] == [
        ("audit-copy", f"{moto_url}/audit", f"{moto_url}/audit-copy", 5),
        ("billing-eu", f"{moto_url}/billing-eu", None, 10),
        ("billing-us", f"{moto_url}/billing-us", None, 10),
        ("tagged-orders", f"{moto_url}/orders", f"{moto_url}/orders-copy", 14),
    ]
    assert {r["backup"] for r in rows} == {"s3://dr-bucket/dr/"}
    assert {r["origin"] for r in rows[1:]} == {"discover"}


def test_check_reaches_every_table(env: dict[str, str], moto_url: str, tmp_path: Path) -> None:
    create_table(moto_url, "orders", stream="NEW_AND_OLD_IMAGES")
    create_table(moto_url, "orders-copy")
    create_table(moto_url, "no-stream")
    path = tmp_path / "fleet.toml"
    good = f"""[[pipeline]]
name = "orders"
primary = "{moto_url}/orders"
replica = "{moto_url}/orders-copy"
"""
    path.write_text(good)
    result = replicator(env, "pipelines", "check", str(path))
    assert (result.returncode, result.stdout.strip()) == (0, "[ok] 1 pipelines"), result.stderr
    path.write_text(
        good
        + f"""
[[pipeline]]
name = "gone"
primary = "{moto_url}/gone"
backup = "s3://dr-bucket/dr/"

[[pipeline]]
name = "quiet"
primary = "{moto_url}/no-stream"
replica = "{moto_url}/orders-copy"
"""
    )
    result = replicator(env, "pipelines", "check", str(path))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: {path}:6: pipeline 'gone': table {moto_url}/gone does not exist"
    assert lines[1].startswith(f"{path}:11: pipeline 'quiet': table {moto_url}/no-stream has no")
    assert "Traceback" not in result.stderr


def test_a_bad_file_is_refused_whole(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(
        """[[pipeline]]
name = "a"
primary = "us-east-1/table-a"
replica = "eu-west-1/table-a"
replcia = "typo"

[[pipeline]]
name = "a"
primary = "us-east-1/table-b"
"""
    )
    result = replicator(env, "pipelines", "check", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {path}:5: pipeline 'a': unknown key 'replcia'",
        f"{path}:7: pipeline 'a': give a replica and/or a backup",
        f"{path}:7: pipeline 'a': the name is taken by the pipeline at line 1",
    ]
