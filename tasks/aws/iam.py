"""The least IAM permissions each process needs, as data: one definition that the policy printer
(``replicator iam-policy``) and the permission check before starting (``tasks.aws.permissions``)
both read.

A role is what one kind of process does with its credentials, per side (``primary``, ``replica``,
``s3``: the sides whose credentials a process may set apart, ``REPLICATOR_<SIDE>_PROFILE`` /
``_ROLE_ARN``):

- ``producer``: reads the primary's change stream (DynamoDB Streams, or the Kinesis stream);
- ``worker``: reads the primary, writes the replica, reads and writes backups (the replicate and
  backup tasks, and every bulk job's segments: diffs, verify passes, backfills, restores);
- ``migrate``: describes both tables, creates the target, exports the source, tails its stream;
- ``backup``: ``backup-table`` into the bucket (a scan, in its own process unless its segments
  go to the workers, or an export);
- ``restore``: ``restore-table`` from the bucket (its writes too, unless they go to the workers);
- ``verify``: re-reads suspects on both sides (the scans are the workers').

Resources are the pipeline's own: its tables, their indexes, streams and exports, the Kinesis
stream, the backup bucket and its prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tasks.core.locations import PRIMARY, REPLICA, S3, S3Location, TableLocation

ROLES = ("producer", "worker", "migrate", "backup", "restore", "verify")
ANY_ACCOUNT = "*"

# What each kind of resource is, by the grants below.
TABLE, INDEX, STREAM, EXPORT, KINESIS, BUCKET, OBJECTS = (
    "table",
    "index",
    "stream",
    "export",
    "kinesis",
    "bucket",
    "objects",
)

_DESCRIBE = ("dynamodb:DescribeTable",)
_READ = ("dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Scan")
_WRITE = ("dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:DeleteItem")
_STREAM = ("dynamodb:DescribeStream", "dynamodb:GetShardIterator", "dynamodb:GetRecords")
_KINESIS = (
    "kinesis:DescribeStreamSummary",
    "kinesis:ListShards",
    "kinesis:GetShardIterator",
    "kinesis:GetRecords",
)
_DEFINITION = (
    "dynamodb:DescribeTable",
    "dynamodb:DescribeTimeToLive",
    "dynamodb:ListTagsOfResource",
)
_EXPORT = (
    "dynamodb:DescribeContinuousBackups",
    "dynamodb:ExportTableToPointInTime",
    "dynamodb:ListExports",
)


@dataclass(frozen=True)
class Grant:
    """Actions one side needs on one kind of resource."""

    side: str
    resource: str  # TABLE, INDEX, STREAM, EXPORT, KINESIS, BUCKET, OBJECTS
    actions: tuple[str, ...]


def _tail(kinesis: bool) -> list[Grant]:
    """Reading the primary's changes: its Kinesis stream, or its DynamoDB stream."""
    if kinesis:
        return [Grant(PRIMARY, KINESIS, _KINESIS)]
    return [Grant(PRIMARY, STREAM, _STREAM)]


def grants(
    role: str, *, kinesis: bool = False, backup: bool = False, export: bool = True
) -> list[Grant]:
    """What ``role`` needs, for a pipeline tailing Kinesis (``kinesis``), with a backup bucket
    (``backup``), and using DynamoDB's exports (``export``: a policy grants them, a check of a
    scan backup or a scan backfill does not ask for them)."""
    exports = _EXPORT if export else ()
    found: list[Grant]
    if role == "producer":
        found = [
            Grant(PRIMARY, TABLE, _DESCRIBE),
            *_tail(kinesis),
            Grant(REPLICA, TABLE, _DESCRIBE),
        ]
    elif role == "worker":
        found = [
            Grant(PRIMARY, TABLE, _READ),
            Grant(PRIMARY, INDEX, ("dynamodb:Scan",)),
            Grant(REPLICA, TABLE, (*_READ, *_WRITE)),
        ]
        if backup:
            found += [
                Grant(S3, BUCKET, ("s3:ListBucket", "s3:ListBucketVersions")),
                Grant(
                    S3,
                    OBJECTS,
                    (
                        "s3:GetObject",
                        "s3:GetObjectVersion",
                        "s3:PutObject",
                        "s3:AbortMultipartUpload",
                        "s3:DeleteObject",
                    ),
                ),
            ]
    elif role == "migrate":
        found = [
            Grant(PRIMARY, TABLE, (*_DEFINITION, "dynamodb:BatchGetItem", *exports)),
            *([Grant(PRIMARY, EXPORT, ("dynamodb:DescribeExport",))] if export else []),
            *_tail(kinesis),
            Grant(
                REPLICA,
                TABLE,
                (
                    *_DEFINITION,
                    "dynamodb:BatchGetItem",
                    "dynamodb:CreateTable",
                    "dynamodb:UpdateTimeToLive",
                    "dynamodb:TagResource",
                ),
            ),
        ]
        if backup and export:  # --backfill export --export-to: the bucket
            found += [
                Grant(S3, BUCKET, ("s3:ListBucket",)),
                Grant(S3, OBJECTS, ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")),
            ]
    elif role == "backup":
        found = [
            Grant(PRIMARY, TABLE, (*_DESCRIBE, "dynamodb:Scan", *exports)),
            *([Grant(PRIMARY, EXPORT, ("dynamodb:DescribeExport",))] if export else []),
            Grant(S3, BUCKET, ("s3:ListBucket",)),
            Grant(S3, OBJECTS, ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload")),
        ]
    elif role == "restore":
        found = [
            Grant(REPLICA, TABLE, (*_READ, *_WRITE, "dynamodb:CreateTable")),
            Grant(PRIMARY, EXPORT, ("dynamodb:DescribeExport",)),
            Grant(S3, BUCKET, ("s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketVersioning")),
            Grant(S3, OBJECTS, ("s3:GetObject", "s3:GetObjectVersion")),
        ]
    elif role == "verify":
        found = [
            Grant(PRIMARY, TABLE, (*_DESCRIBE, "dynamodb:BatchGetItem")),
            Grant(REPLICA, TABLE, (*_DESCRIBE, "dynamodb:BatchGetItem")),
        ]
    else:
        raise ValueError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    return found


@dataclass(frozen=True)
class Scope:
    """One pipeline's resources, and the accounts its tables live in."""

    primary: TableLocation
    replica: TableLocation | None = None
    backup: S3Location | None = None
    kinesis_stream: str | None = None
    primary_account: str = ANY_ACCOUNT
    replica_account: str = ANY_ACCOUNT

    def arns(self, side: str, resource: str) -> list[str]:
        """The ARNs of ``resource`` on ``side`` (none where the pipeline has no such thing)."""
        if side == S3:
            if self.backup is None:
                return []
            bucket = f"arn:aws:s3:::{self.backup.bucket}"
            if resource == BUCKET:
                return [bucket]
            return [f"{bucket}/{self.backup.prefix}/*" if self.backup.prefix else f"{bucket}/*"]
        where = self.primary if side == PRIMARY else self.replica
        if where is None:
            return []
        account = self.primary_account if side == PRIMARY else self.replica_account
        if resource == KINESIS:
            if self.kinesis_stream is None:
                return []
            return [f"arn:aws:kinesis:{where.region}:{account}:stream/{self.kinesis_stream}"]
        table = f"arn:aws:dynamodb:{where.region}:{account}:table/{where.table}"
        suffix = {TABLE: "", INDEX: "/index/*", STREAM: "/stream/*", EXPORT: "/export/*"}
        return [table + suffix[resource]]

    @property
    def cross_account(self) -> bool:
        return (
            self.replica is not None
            and ANY_ACCOUNT not in (self.primary_account, self.replica_account)
            and self.primary_account != self.replica_account
        )


def policy(
    role: str, scopes: Sequence[Scope], sides: Iterable[str] | None = None
) -> dict[str, Any]:
    """The identity policy ``role`` needs over every pipeline in ``scopes`` (only ``sides``'s
    grants when given): one statement per side and kind of resource."""
    wanted = set(sides) if sides is not None else {PRIMARY, REPLICA, S3}
    merged: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for scope in scopes:
        for grant in grants(
            role, kinesis=scope.kinesis_stream is not None, backup=scope.backup is not None
        ):
            arns = scope.arns(grant.side, grant.resource)
            if grant.side not in wanted or not arns:
                continue
            actions, resources = merged.setdefault((grant.side, grant.resource), ([], []))
            actions.extend(a for a in grant.actions if a not in actions)
            resources.extend(r for r in arns if r not in resources)
    statements = [
        {
            "Sid": _sid(role, side, resource),
            "Effect": "Allow",
            "Action": sorted(actions),
            "Resource": resources,
        }
        for (side, resource), (actions, resources) in merged.items()
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def _sid(*parts: str) -> str:
    return "".join(p.capitalize() for part in parts for p in part.split("-"))


def trust_policy(replica_account: str) -> dict[str, Any]:
    """The primary account's role for the replica account's processes to assume
    (``REPLICATOR_PRIMARY_ROLE_ARN``)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReplicatorAccountAssumes",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{replica_account}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def table_resource_policy(scope: Scope, roles: Sequence[str] = ROLES) -> dict[str, Any]:
    """The primary table's resource-based policy that lets the replica account's processes in
    without a role to assume: what ``roles`` need on the primary's table, indexes, stream and
    exports (DynamoDB attaches a table's policy to the table and its indexes, a stream's to the
    stream: apply the ``Stream`` statement with PutResourcePolicy on the stream's ARN)."""
    statements = []
    for resource in (TABLE, INDEX, STREAM, EXPORT):
        actions = sorted(
            {
                a
                for role in roles
                for g in grants(role, kinesis=False, backup=scope.backup is not None)
                if g.side == PRIMARY and g.resource == resource
                for a in g.actions
            }
        )
        if actions:
            statements.append(
                {
                    "Sid": _sid("replicator", resource),
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{scope.replica_account}:root"},
                    "Action": actions,
                    "Resource": scope.arns(PRIMARY, resource),
                }
            )
    return {"Version": "2012-10-17", "Statement": statements}


def documents(scopes: Sequence[Scope], roles: Sequence[str] = ROLES) -> dict[str, Any]:
    """Every policy, by name: each role's identity policy (the worker's also per side, for
    per-side credentials), and, for a pipeline whose primary is in another account, the trust
    policy and the primary table's resource policy."""
    out: dict[str, Any] = {}
    for role in roles:
        out[role] = policy(role, scopes)
        if role == "worker":
            for side in (PRIMARY, REPLICA, S3):
                part = policy(role, scopes, [side])
                if part["Statement"]:
                    out[f"worker-{side}"] = part
    for scope in scopes:
        if scope.cross_account:
            name = scope.primary.table
            out[f"primary-trust:{name}"] = trust_policy(scope.replica_account)
            out[f"primary-table-policy:{name}"] = table_resource_policy(scope, roles)
    return out


def by_resource(document: Mapping[str, Any]) -> dict[str, set[str]]:
    """A policy's actions by resource ARN (tests and the permission check compare with it)."""
    out: dict[str, set[str]] = {}
    for statement in document["Statement"]:
        for resource in statement["Resource"]:
            out.setdefault(resource, set()).update(statement["Action"])
    return out
