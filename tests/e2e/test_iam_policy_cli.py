"""`replicator iam-policy`: each role's least policy, scoped to the pipeline's ARNs; the
cross-account documents; one document with --role; bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.aws import iam
from tests.e2e.test_pipelines_cli import replicator

ARGS = (
    "iam-policy",
    "--primary",
    "us-east-1/orders",
    "--replica",
    "eu-west-1/orders",
    "--backup",
    "s3://backups/orders",
    "--primary-account",
    "111111111111",
    "--replica-account",
    "222222222222",
)
PRIMARY = "arn:aws:dynamodb:us-east-1:111111111111:table/orders"
REPLICA = "arn:aws:dynamodb:eu-west-1:222222222222:table/orders"


def test_every_role_scoped_to_the_pipeline(env: dict[str, str]) -> None:
    done = replicator(env, *ARGS)
    assert done.returncode == 0, done.stderr
    documents = json.loads(done.stdout)
    assert set(iam.ROLES) <= set(documents)
    assert {"worker-primary", "worker-replica", "worker-s3"} <= set(documents)
    producer = iam.by_resource(documents["producer"])
    assert producer == {
        PRIMARY: {"dynamodb:DescribeTable"},
        f"{PRIMARY}/stream/*": {
            "dynamodb:DescribeStream",
            "dynamodb:GetShardIterator",
            "dynamodb:GetRecords",
        },
        REPLICA: {"dynamodb:DescribeTable"},
    }
    worker = iam.by_resource(documents["worker"])
    assert "dynamodb:BatchWriteItem" in worker[REPLICA]
    assert "dynamodb:BatchWriteItem" not in worker[PRIMARY]  # the primary is only read
    assert worker["arn:aws:s3:::backups/orders/*"] >= {"s3:PutObject", "s3:GetObjectVersion"}
    assert iam.by_resource(documents["worker-primary"]) == {
        k: v for k, v in worker.items() if k.startswith(PRIMARY)
    }
    every = {r for d in documents.values() for s in d["Statement"] for r in s.get("Resource", [])}
    assert "*" not in every  # nothing beyond the pipeline's resources
    # the primary is in another account: the trust and the table's resource policy
    trust = documents["primary-trust:orders"]["Statement"][0]
    assert trust["Principal"] == {"AWS": "arn:aws:iam::222222222222:root"}
    table_policy = iam.by_resource(documents["primary-table-policy:orders"])
    assert table_policy[f"{PRIMARY}/stream/*"] >= {"dynamodb:GetRecords"}
    assert "dynamodb:BatchWriteItem" not in table_policy[PRIMARY]


def test_one_role_a_kinesis_source_and_a_pipelines_file(
    env: dict[str, str], tmp_path: Path
) -> None:
    done = replicator(env, *ARGS, "--kinesis-stream", "orders-changes", "--role", "producer")
    assert done.returncode == 0, done.stderr
    producer = iam.by_resource(json.loads(done.stdout))
    stream = "arn:aws:kinesis:us-east-1:111111111111:stream/orders-changes"
    assert producer[stream] >= {"kinesis:GetRecords", "kinesis:ListShards"}
    assert not any("/stream/" in arn for arn in producer)

    path = tmp_path / "pipelines.toml"
    path.write_text(
        '[[pipeline]]\nname = "a"\nprimary = "us-east-1/aaa"\nreplica = "us-east-1/aaa-copy"\n'
        '[[pipeline]]\nname = "b"\nprimary = "us-east-1/bbb"\nreplica = "us-east-1/bbb-copy"\n'
    )
    done = replicator(env, "iam-policy", "--config", str(path), "--role", "verify")
    assert done.returncode == 0, done.stderr
    resources = set(iam.by_resource(json.loads(done.stdout)))
    assert {arn.rsplit("/", 1)[1] for arn in resources} == {"aaa", "aaa-copy", "bbb", "bbb-copy"}


def test_bad_input_is_one_line_and_exit_2(env: dict[str, str]) -> None:
    for args in (
        ("iam-policy",),
        (*ARGS, "--role", "nobody"),
        ("iam-policy", "--primary", "us-east-1/orders", "--backup", "not-s3"),
    ):
        done = replicator(env, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.startswith("error: ") and len(done.stderr.splitlines()) == 1
