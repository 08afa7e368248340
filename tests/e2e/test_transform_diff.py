"""diff-tables through a transform: --backfill writes t(primary), a diff with the same
definition finds nothing, without it finds each transformed item; a bad definition is refused."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.test_backup_incremental import run
from tests.support.tables import client, create_table, scan_all

SHAPE = ["--exclude-attributes", "ssn", "--rename-attribute", "userId=user_id"]
SHAPE += ["--filter", "kind != 'internal'"]


def _tables(moto_url: str) -> None:
    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    ddb = client(moto_url)
    for i in range(30):
        kind = "internal" if i % 10 == 0 else "public"
        item = {
            "id": {"S": f"k{i:02}"},
            "kind": {"S": kind},
            "ssn": {"S": "9"},
            "userId": {"S": "u"},
        }
        ddb.put_item(TableName="primary", Item=item)


def _diff(env: dict[str, str], moto_url: str, *args: str) -> Any:
    return run(env, "diff-tables", f"{moto_url}/primary", f"{moto_url}/replica", *args)


def test_backfill_and_diff_through_the_same_transform(env: dict[str, str], moto_url: str) -> None:
    _tables(moto_url)

    filled = _diff(env, moto_url, "--backfill", *SHAPE)
    replica = scan_all(moto_url, "replica")
    same = _diff(env, moto_url, *SHAPE)
    plain = _diff(env, moto_url)
    client(moto_url).put_item(
        TableName="primary", Item={"id": {"S": "k01"}, "kind": {"S": "internal"}}
    )
    repaired = _diff(env, moto_url, "--repair", *SHAPE)

    assert filled.returncode == 0, filled.stderr
    assert len(replica) == 27  # three internal items filtered out
    assert all("ssn" not in i and "user_id" in i and "userId" not in i for i in replica.values())
    assert same.returncode == 0 and json.loads(same.stdout.splitlines()[-1])["discrepancies"] == 0
    assert plain.returncode == 1
    counts = json.loads(plain.stdout.splitlines()[-1])
    assert (counts["different"], counts["missing"]) == (27, 3)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert '{"id":{"S":"k01"}}' not in scan_all(moto_url, "replica")  # stopped matching: gone


def test_a_bad_definition_is_one_line_and_exit_2(env: dict[str, str], moto_url: str) -> None:
    _tables(moto_url)

    for args, message in (
        (["--filter", "kind == "], "--filter"),
        (["--transform", "no_such_module:f"], "--transform"),
        (["--exclude-attributes", "id"], "key attribute"),
        (["--skip-expired"], "no TTL attribute"),
    ):
        result = _diff(env, moto_url, "--backfill", *args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        line = lines[0]
        assert line.startswith("error: ") and message in line
    assert scan_all(moto_url, "replica") == {}


def test_replicate_record_and_diff_record_through_the_transform(
    env: dict[str, str], moto_url: str
) -> None:
    _tables(moto_url)
    tables = [f"{moto_url}/primary", f"{moto_url}/replica"]

    copied = run(env, "replicate-record", *tables, '{"id":"k01"}', *SHAPE)
    hidden = run(env, "replicate-record", *tables, '{"id":"k00"}', *SHAPE)  # internal
    same = run(env, "diff-record", *tables, '{"id":"k01"}', *SHAPE)
    plain = run(env, "diff-record", *tables, '{"id":"k01"}')

    assert copied.returncode == 0 and copied.stdout.startswith("[put]"), copied.stderr
    assert hidden.returncode == 0 and hidden.stdout.startswith("[deleted]"), hidden.stderr
    assert scan_all(moto_url, "replica")['{"id":{"S":"k01"}}'] == {
        "id": {"S": "k01"},
        "kind": {"S": "public"},
        "user_id": {"S": "u"},
    }
    assert same.returncode == 0 and "through transform" in same.stdout
    assert plain.returncode == 1
