"""Least privilege under enforced IAM: moto's server checks every request against the policies of
the caller's IAM user once told to (``/moto-api/reset-auth``). Each role gets a user whose policy
is what ``replicator iam-policy`` prints; the pipeline, a backup, a restore and a migration run
with those users' keys (one profile per side), and the permission check before starting finds
nothing missing; then each action the check calls is removed from its role's policy, one at a
time, and the check names it (action, resource, side).

What moto leaves unproven: it matches DynamoDB, DynamoDB Streams and Kinesis requests against
the resource ``*`` only, so their statements are given ``*`` here (the ARNs ``iam-policy`` scopes
them to are checked by the unit tests, not by a server); and it names S3 actions by API
operation (``ListObjectsV2``, ``HeadObject``, ...) where IAM has ``s3:ListBucket``,
``s3:GetObject``, ...: each S3 action is given as the operations IAM lets it call. S3 resources
(bucket and prefix ARNs) are matched as AWS does.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis

from tasks.aws import iam, permissions
from tasks.coord import deadletters, stats
from tasks.core.config import settings
from tasks.core.locations import PRIMARY, REPLICA, S3, parse_s3
from tests.conftest import _reset_process_caches
from tests.e2e.test_backup_restore import fill
from tests.integration.test_backup_incremental import make_bucket, run
from tests.support.migration import migrate, ready_line
from tests.support.servers import wait_until
from tests.support.tables import client, create_table

BACKUP = "s3://backups/orders"
MOTO_S3 = {  # IAM's S3 action -> the operations moto names instead
    "s3:ListBucket": ["s3:ListObjectsV2", "s3:ListObjects", "s3:HeadBucket"],
    "s3:ListBucketVersions": ["s3:ListObjectVersions"],
    "s3:GetObject": ["s3:GetObject", "s3:HeadObject"],
    "s3:GetObjectVersion": ["s3:GetObject", "s3:HeadObject"],
    "s3:PutObject": [
        "s3:PutObject",
        "s3:CreateMultipartUpload",
        "s3:UploadPart",
        "s3:CompleteMultipartUpload",
        "s3:AbortMultipartUpload",
    ],
}
# The documents of `iam.documents` each process runs with, by the side it uses them for.
PROFILES = {
    "producer": {PRIMARY: "producer", REPLICA: "producer"},
    "worker": {PRIMARY: "worker-primary", REPLICA: "worker-replica", S3: "worker-s3"},
    "migrate": {PRIMARY: "migrate", REPLICA: "migrate", S3: "migrate"},
    "backup": {PRIMARY: "backup", S3: "backup"},
    "restore": {PRIMARY: "restore", REPLICA: "restore", S3: "restore"},
    "verify": {PRIMARY: "verify", REPLICA: "verify"},
}


def as_moto_checks(document: dict[str, Any]) -> dict[str, Any]:
    statements = []
    for statement in document["Statement"]:
        actions = statement["Action"]
        if all(a.startswith("s3:") for a in actions):
            moto = sorted({m for a in actions for m in MOTO_S3.get(a, [a])})
            statements.append({**statement, "Action": moto})
        else:
            statements.append({**statement, "Resource": "*"})
    return {**document, "Statement": statements}


def _auth(url: str, count: str) -> None:
    request = urllib.request.Request(
        f"{url}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(request, timeout=10).read()


class Enforced:
    """IAM users with the generated policies, and the switch of enforcement."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url, self.iam = url, client(url, "iam")
        scope = iam.Scope(
            primary=settings().location(f"{url}/orders"),
            replica=settings().location(f"{url}/orders-copy"),
            backup=parse_s3(BACKUP),
        )
        self.documents = iam.documents([scope])
        lines = []
        for name in ["admin", *self.documents]:
            if ":" in name:
                continue  # cross-account documents: not for users
            self.iam.create_user(UserName=name)
            policy = {"Version": "2012-10-17", "Statement": [_everything()]}
            if name != "admin":
                policy = as_moto_checks(self.documents[name])
            self.put(name, policy)
            key = self.iam.create_access_key(UserName=name)["AccessKey"]
            lines += [f"[{name}]", f"aws_access_key_id = {key['AccessKeyId']}"]
            lines += [f"aws_secret_access_key = {key['SecretAccessKey']}", ""]
        self.credentials = tmp_path / "credentials"
        self.credentials.write_text("\n".join(lines))
        self.iam = self.client("iam")  # once enforced, IAM itself wants a permitted caller

    def client(self, service: str, user: str = "admin") -> Any:
        lines = self.credentials.read_text().splitlines()
        at = lines.index(f"[{user}]")
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=lines[at + 1].split(" = ")[1],
            aws_secret_access_key=lines[at + 2].split(" = ")[1],
        )

    def put(self, user: str, policy: dict[str, Any]) -> None:
        self.iam.put_user_policy(
            UserName=user, PolicyName="replicator", PolicyDocument=json.dumps(policy)
        )

    def without(self, user: str, *actions: str) -> None:
        """The user's generated policy less ``actions``."""
        document = json.loads(json.dumps(self.documents[user]))
        for statement in document["Statement"]:
            statement["Action"] = [a for a in statement["Action"] if a not in actions]
        document["Statement"] = [s for s in document["Statement"] if s["Action"]]
        self.put(user, as_moto_checks(document))

    def env(self, role: str) -> dict[str, str]:
        """A process's environment for ``role``: its sides' profiles."""
        out = {"AWS_SHARED_CREDENTIALS_FILE": str(self.credentials)}
        for side, profile in PROFILES[role].items():
            out[f"REPLICATOR_{side.upper()}_PROFILE"] = profile
        return out


def _everything() -> dict[str, Any]:
    return {"Effect": "Allow", "Action": "*", "Resource": "*"}


@pytest.fixture()
def enforced(env: dict[str, str], moto_url: str, tmp_path: Path) -> Iterator[Enforced]:
    create_table(moto_url, "orders", stream="NEW_AND_OLD_IMAGES")
    create_table(moto_url, "orders-copy")
    make_bucket(moto_url)
    fill(moto_url, "orders", 50)
    found = Enforced(moto_url, tmp_path)
    _auth(moto_url, "0")
    try:
        yield found
    finally:
        _auth(moto_url, "inf")


def _as(monkeypatch: pytest.MonkeyPatch, enforced: Enforced, role: str) -> None:
    for side in (PRIMARY, REPLICA, S3):
        monkeypatch.delenv(f"REPLICATOR_{side.upper()}_PROFILE", raising=False)
    for name, value in enforced.env(role).items():
        monkeypatch.setenv(name, value)
    _reset_process_caches()


def _target(url: str, role: str) -> permissions.Target:
    cfg = settings()
    return permissions.Target(
        cfg.table(f"{url}/orders"),
        cfg.table(f"{url}/orders-copy", REPLICA),
        parse_s3(BACKUP),
        None,
        export=role in ("migrate", "backup"),
    )


@pytest.mark.parametrize("role", iam.ROLES)
def test_each_role_passes_the_check_and_each_action_removed_is_named(
    enforced: Enforced, moto_url: str, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as(monkeypatch, enforced, role)
    assert permissions.check(role, _target(moto_url, role)) == []
    export = role in ("migrate", "backup")
    actions = list(dict.fromkeys(permissions.probed(role, backup=True, export=export)))
    assert actions, role
    for action in actions:
        users = sorted(set(PROFILES[role].values()))
        user = next(u for u in users if action in json.dumps(enforced.documents[u]))
        if _moto_cannot_tell(enforced.documents[user], action):
            continue
        enforced.without(user, action)
        try:
            missing = permissions.check(role, _target(moto_url, role))
        finally:
            enforced.put(user, as_moto_checks(enforced.documents[user]))
        named = {m.action for m in missing}
        assert action in named, (role, action, missing)
        found = next(m for m in missing if m.action == action)
        assert found.side in PROFILES[role]
        assert found.resource  # an ARN, a table or the bucket
        # nothing else went missing but what the action's removal also stops
        assert named <= {action, *_follows(action)}, (role, action, missing)


def _moto_cannot_tell(document: dict[str, Any], action: str) -> bool:
    """Whether what moto checks for ``action`` is still granted by another action of the
    document (s3:GetObject and s3:GetObjectVersion are both moto's GetObject)."""
    others = {a for st in document["Statement"] for a in st["Action"] if a != action}
    still = {m for a in others for m in MOTO_S3.get(a, [a])}
    return set(MOTO_S3.get(action, [action])) <= still


def _follows(action: str) -> set[str]:
    """Checks that cannot be told apart once ``action`` is gone."""
    if action == "s3:ListBucket":
        return {"s3:GetObject", "s3:GetObjectVersion"}  # S3 answers 403 for a missing key
    return set()


def test_the_pipeline_backup_and_restore_run_with_the_generated_policies(
    enforced: Enforced,
    env: dict[str, str],
    moto_url: str,
    start_worker: Any,
    start_producer: Any,
    redis_client: redis.Redis,
) -> None:
    start_worker(concurrency=2, extra_env=enforced.env("worker"))
    primary, replica = f"{moto_url}/orders", f"{moto_url}/orders-copy"
    start_producer("--primary", primary, "--replica", replica, extra_env=enforced.env("producer"))
    admin = enforced.client("dynamodb")
    wait_until(
        lambda: _scan(admin, "orders-copy") == _scan(admin, "orders"),
        120,
        "the replica to equal the primary",
        interval=1.0,
    )

    backup = run({**env, **enforced.env("backup")}, "backup-table", primary, BACKUP, "--jobid", "j")
    assert backup.returncode == 0, backup.stderr
    restore = run(
        {**env, **enforced.env("restore")},
        "restore-table",
        f"{BACKUP}/j",
        f"{moto_url}/restored",
        "--create",
    )
    assert restore.returncode == 0, restore.stderr
    assert _scan(admin, "restored") == _scan(admin, "orders")

    # A worker refused later dead-letters the key, the action in the reason, and counts it.
    enforced.without("worker-replica", "dynamodb:BatchWriteItem", "dynamodb:PutItem")
    admin.put_item(TableName="orders", Item={"id": {"S": "refused"}})
    wait_until(lambda: deadletters.count(redis_client) > 0, 120, "a dead letter", interval=0.5)
    ((_, letter),) = deadletters.entries(redis_client)
    assert letter.key == {"id": {"S": "refused"}}
    assert "access denied: dynamodb:PutItem" in letter.reason, letter.reason
    wait_until(
        lambda: stats.access_denied(redis_client).get("dynamodb:PutItem", 0) >= 1,
        30,
        "the refusal counted",
    )


def _scan(ddb: Any, table: str) -> list[Any]:
    return sorted(
        (json.dumps(i, sort_keys=True, default=repr) for i in ddb.scan(TableName=table)["Items"]),
    )


def test_a_missing_permission_stops_the_command_with_one_line_each(
    enforced: Enforced, env: dict[str, str], moto_url: str
) -> None:
    enforced.without("backup", "s3:ListBucket", "dynamodb:DescribeTable")
    backup = run({**env, **enforced.env("backup")}, "backup-table", f"{moto_url}/orders", BACKUP)
    assert backup.returncode == 2, backup.stderr
    errors = [line for line in backup.stderr.splitlines() if line.startswith("error:")]
    assert "error: backup: missing permission dynamodb:DescribeTable on table" in errors[0]
    assert "(primary side)" in errors[0]
    assert any("missing permission s3:ListBucket on s3://backups (s3 side)" in e for e in errors)
    assert len(errors) == len(backup.stderr.strip().splitlines())  # nothing but those lines

    # A restore is refused before it reads the backup or writes a thing.
    enforced.without("restore", "dynamodb:BatchWriteItem")
    restore = run(
        {**env, **enforced.env("restore")},
        "restore-table",
        f"{BACKUP}/j",
        f"{moto_url}/orders-copy",
    )
    assert restore.returncode == 2, restore.stderr
    assert restore.stderr.startswith(
        "error: restore: missing permission dynamodb:BatchWriteItem on arn:aws:dynamodb:"
    ), restore.stderr
    assert "table/orders-copy (replica side)" in restore.stderr
    assert len(restore.stderr.strip().splitlines()) == 1


def test_a_migration_runs_with_the_generated_policies(
    enforced: Enforced, env: dict[str, str], moto_url: str, start_worker: Any, tmp_path: Path
) -> None:
    start_worker(concurrency=2, extra_env=enforced.env("worker"))
    command = migrate(
        {**env, **enforced.env("migrate")},
        tmp_path,
        f"{moto_url}/orders",
        f"{moto_url}/orders-copy",
        "--segments",
        "2",
        "--exit-when-ready",
        "--name",
        "least",
    )
    assert command.process.wait(180) == 0, command.output()
    report = ready_line(command.output())
    assert report["items_copied"] == 50
    admin = enforced.client("dynamodb")
    assert _scan(admin, "orders-copy") == _scan(admin, "orders")


def test_the_producer_its_pipelines_check_and_migrate_refuse_to_start_naming_each_permission(
    enforced: Enforced, env: dict[str, str], moto_url: str, tmp_path: Path
) -> None:
    primary, replica = f"{moto_url}/orders", f"{moto_url}/orders-copy"
    # Without DescribeStream no shard is known: the stream's later checks (an iterator, a
    # record) cannot be made, and only DescribeStream is named (as DescribeTable, above).
    enforced.without("producer", "dynamodb:DescribeStream")
    as_producer = {**env, **enforced.env("producer")}

    producer = run(
        as_producer, "python", "-m", "producer", "--primary", primary, "--replica", replica
    )
    assert producer.returncode == 2, producer.stderr
    (line,) = producer.stderr.strip().splitlines()
    assert line.startswith(
        "error: producer: missing permission dynamodb:DescribeStream on arn:aws:dynamodb:"
    ), line
    assert ":table/orders/stream/" in line and line.endswith("(primary side)")

    fleet = tmp_path / "pipelines.toml"
    fleet.write_text(
        f'[[pipeline]]\nname = "orders"\nprimary = "{primary}"\nreplica = "{replica}"\n'
    )
    checked = run(as_producer, "replicator", "pipelines", "check", str(fleet))
    assert checked.returncode == 2, checked.stderr
    assert "missing permission dynamodb:DescribeStream on arn:aws:dynamodb:" in checked.stderr
    assert "[ok]" not in checked.stdout

    # One action granted on both tables: both are named, each with its side, at once.
    enforced.without("migrate", "dynamodb:DescribeTimeToLive")
    command = migrate(
        {**env, **enforced.env("migrate")}, tmp_path, primary, replica, "--name", "refused"
    )
    assert command.process.wait(60) == 2, command.output()
    refused = [e for e in command.output().splitlines() if e.startswith("error: migrate: ")]
    assert [e.split(" on ")[0] for e in refused] == [
        "error: migrate: missing permission dynamodb:DescribeTimeToLive"
    ] * 2, command.output()
    assert refused[0].endswith("table/orders (primary side)"), refused
    assert refused[1].endswith("table/orders-copy (replica side)"), refused
    assert _scan(enforced.client("dynamodb"), "orders-copy") == []  # nothing started
