"""The permission check before anything starts: call what a role will need, harmlessly, and name
every permission that is missing at once.

Each action of the role (``tasks.aws.iam.grants``) that can be called without changing anything
is called with the credentials of its side: a Describe, a read of a key that does not exist, a
conditional write that cannot succeed, a delete request for a key that does not exist, a
stream's newest position and one record from it, an S3 listing of one key, a read of an object
that is not there. Only an access-denied answer counts: any other (the object is not there, the
condition failed) means the call was allowed. A check that needs an earlier call's answer is
skipped when that call is denied (the denied one is reported; the rest show on the next run):
the table's key schema and ARNs need DescribeTable, a stream's iterator needs a shard
(DescribeStream, ListShards), its record an iterator (GetShardIterator). Actions that cannot be
called harmlessly (CreateTable, UpdateTimeToLive, TagResource, ExportTableToPointInTime,
s3:PutObject, s3:DeleteObject) are not checked; ``replicator iam-policy`` still grants them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from tasks.aws import clients, iam
from tasks.aws.errors import NOT_FOUND_CODES, error_code, is_access_denied
from tasks.core.errors import AccessDeniedError, ConfigurationError
from tasks.core.locations import PRIMARY, REPLICA, S3, S3Location, Table

T = TypeVar("T")
PROBE_KEY = "\x00replicator-permission-check"
FAKE_SHARD = "shardId-00000000000000000000-00000000"
PURPOSE = "permission-check"  # the probes' User-Agent says so: replicator/permission-check


@dataclass(frozen=True)
class Missing:
    """A permission a role lacks: the action, on what, with which side's credentials."""

    action: str
    resource: str
    side: str

    def __str__(self) -> str:
        return f"missing permission {self.action} on {self.resource} ({self.side} side)"


@dataclass
class Target:
    """What a role works on: the tables (``Table`` handles carry the side's credentials), the
    Kinesis stream, the bucket."""

    primary: Table | None = None
    replica: Table | None = None
    backup: S3Location | None = None
    kinesis_stream: str | None = None
    export: bool = False  # the role will use DynamoDB's exports (a migrate or backup with them)
    _described: dict[str, dict[str, Any]] = field(default_factory=dict)
    _absent: set[str] = field(default_factory=set)  # sides whose table does not exist
    # A stream's shard and iterator, as the probes before found them (the grants list a
    # stream's actions in the order they need each other), by (what, side).
    _found: dict[tuple[str, str], str] = field(default_factory=dict)

    def table(self, side: str) -> Table | None:
        return self.primary if side == PRIMARY else self.replica if side == REPLICA else None


Probe = Callable[[Target, str], object]
"""Call one action on one side's resource (what it returns is not used)."""


def check(role: str, target: Target) -> list[Missing]:
    """Every permission ``role`` lacks over ``target`` (empty: all it could check are there)."""
    missing: list[Missing] = []
    unreachable: set[str] = set()  # sides whose endpoint did not answer: the command says so
    kinesis, backup = target.kinesis_stream is not None, target.backup is not None
    for grant in iam.grants(role, kinesis=kinesis, backup=backup, export=target.export):
        for action in grant.actions:
            probe = _PROBES.get((grant.resource, action))
            if probe is None or (grant.side != S3 and target.table(grant.side) is None):
                continue
            if grant.side in unreachable or grant.side in target._absent:
                continue
            try:
                found = _denied(action, grant, target, probe)
            except BotoCoreError:
                unreachable.add(grant.side)
                continue
            if found is not None and found not in missing:
                missing.append(found)
    return missing


def _denied(action: str, grant: iam.Grant, target: Target, probe: Probe) -> Missing | None:
    try:
        probe(target, grant.side)
    except _Unchecked:
        pass  # the table could not be described: that is the one reported
    except ClientError as exc:
        if is_access_denied(exc):
            return Missing(action, _resource(target, grant), grant.side)
        if error_code(exc) in NOT_FOUND_CODES and action == "dynamodb:DescribeTable":
            target._absent.add(grant.side)  # no table: nothing more to try on it
    return None


def _resource(target: Target, grant: iam.Grant) -> str:
    """What the denied call was on, as the policy names it (an ARN where one is known)."""
    if grant.side == S3:
        where = _bucket(target)
        return f"s3://{where.bucket}" if grant.resource == iam.BUCKET else f"{where}/*"
    if grant.resource == iam.KINESIS:
        return f"Kinesis stream {target.kinesis_stream}"
    described = target._described.get(grant.side)
    table = str(described["TableArn"]) if described else f"table {target.table(grant.side)}"
    if grant.resource == iam.STREAM:
        arn = described.get("LatestStreamArn") if described else None
        return str(arn) if arn else f"the stream of {table}"
    if grant.resource == iam.EXPORT:
        return f"{table}/export/*"
    return table


# -- the probes ------------------------------------------------------------------------------


def _ddb(target: Target, side: str) -> Any:
    table = target.table(side)
    assert table is not None
    return clients.dynamodb(table, PURPOSE)


class _Unchecked(Exception):
    """A probe needs the table's description (its key schema, its ARNs) and cannot have it."""


def _describe(target: Target, side: str) -> dict[str, Any]:
    if side not in target._described:
        try:
            _probe_describe(target, side)
        except ClientError as exc:
            raise _Unchecked(str(exc)) from exc
    return target._described[side]


def _key(target: Target, side: str) -> dict[str, Any]:
    """A key of the table's schema that no item has."""
    described = _describe(target, side)
    types = {a["AttributeName"]: a["AttributeType"] for a in described["AttributeDefinitions"]}
    values = {"S": {"S": PROBE_KEY}, "N": {"N": "-9.87654321E+125"}, "B": {"B": PROBE_KEY.encode()}}
    return {k["AttributeName"]: values[types[k["AttributeName"]]] for k in described["KeySchema"]}


def _never(target: Target, side: str) -> dict[str, Any]:
    """A condition no item meets: the key's first attribute both present and absent."""
    name = _describe(target, side)["KeySchema"][0]["AttributeName"]
    return {
        "ConditionExpression": "attribute_exists(#k) AND attribute_not_exists(#k)",
        "ExpressionAttributeNames": {"#k": name},
    }


def _name_of(target: Target, side: str) -> str:
    table = target.table(side)
    assert table is not None
    return table.name


def _probe_describe(target: Target, side: str) -> None:
    table = target.table(side)
    assert table is not None
    target._described[side] = _ddb(target, side).describe_table(TableName=table.name)["Table"]


def _probe_get(target: Target, side: str) -> None:
    _ddb(target, side).get_item(TableName=_name_of(target, side), Key=_key(target, side))


def _probe_batch_get(target: Target, side: str) -> None:
    request = {_name_of(target, side): {"Keys": [_key(target, side)]}}
    _ddb(target, side).batch_get_item(RequestItems=request)


def _probe_scan(target: Target, side: str) -> None:
    _ddb(target, side).scan(TableName=_name_of(target, side), Limit=1)


def _probe_put(target: Target, side: str) -> None:
    key, never = _key(target, side), _never(target, side)
    _ddb(target, side).put_item(TableName=_name_of(target, side), Item=key, **never)


def _probe_delete(target: Target, side: str) -> None:
    key, never = _key(target, side), _never(target, side)
    _ddb(target, side).delete_item(TableName=_name_of(target, side), Key=key, **never)


def _probe_batch_write(target: Target, side: str) -> None:
    """A delete of a key that no item has: nothing changes, nothing reaches the stream."""
    request = {_name_of(target, side): [{"DeleteRequest": {"Key": _key(target, side)}}]}
    _ddb(target, side).batch_write_item(RequestItems=request)


def _plain(name: str) -> Probe:
    def probe(target: Target, side: str) -> None:
        table = _describe(target, side)
        getattr(_ddb(target, side), name)(**_arg_for(name, table))

    return probe


def _arg_for(name: str, table: dict[str, Any]) -> dict[str, Any]:
    if name == "list_tags_of_resource":
        return {"ResourceArn": table["TableArn"]}
    if name == "list_exports":
        return {"TableArn": table["TableArn"], "MaxResults": 1}
    return {"TableName": table["TableName"]}


def _probe_describe_export(target: Target, side: str) -> None:
    arn = f"{_describe(target, side)['TableArn']}/export/01234567890123-0123abcd"
    _ddb(target, side).describe_export(ExportArn=arn)


def _stream_arn(target: Target, side: str) -> str | None:
    return _describe(target, side).get("LatestStreamArn")


def _streams(target: Target, side: str) -> Any:
    table = target.table(side)
    assert table is not None
    return clients.dynamodbstreams(table, PURPOSE)


def _probe_describe_stream(target: Target, side: str) -> None:
    arn = _stream_arn(target, side)
    if arn:
        found = _streams(target, side).describe_stream(StreamArn=arn, Limit=1)
        _note_shard(target, "stream", side, found["StreamDescription"]["Shards"])


def _note_shard(target: Target, stream: str, side: str, shards: list[Any]) -> None:
    if shards:
        target._found[f"{stream}-shard", side] = shards[0]["ShardId"]


def _stream_iterator(target: Target, side: str) -> None:
    """An iterator at the newest position of the shard DescribeStream gave (without it, of a
    shard that does not exist: a denied call is still told from a missing shard)."""
    arn = _stream_arn(target, side)
    if arn:
        shard = target._found.get(("stream-shard", side), FAKE_SHARD)
        got = _streams(target, side).get_shard_iterator(
            StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST"
        )
        target._found["stream-iterator", side] = got["ShardIterator"]


def _probe_stream_records(target: Target, side: str) -> None:
    iterator = target._found.get(("stream-iterator", side))
    if iterator:  # else the iterator's own probe reported why there is none
        _streams(target, side).get_records(ShardIterator=iterator, Limit=1)


def _kinesis(target: Target, side: str) -> Any:
    table = target.table(side)
    assert table is not None
    return clients.kinesis(table, PURPOSE)


def _probe_kinesis_summary(target: Target, side: str) -> None:
    _kinesis(target, side).describe_stream_summary(StreamName=target.kinesis_stream)


def _probe_kinesis_shards(target: Target, side: str) -> None:
    found = _kinesis(target, side).list_shards(StreamName=target.kinesis_stream, MaxResults=1)
    _note_shard(target, "kinesis", side, found["Shards"])


def _kinesis_iterator(target: Target, side: str) -> None:
    shard = target._found.get(("kinesis-shard", side), FAKE_SHARD)
    got = _kinesis(target, side).get_shard_iterator(
        StreamName=target.kinesis_stream, ShardId=shard, ShardIteratorType="LATEST"
    )
    target._found["kinesis-iterator", side] = got["ShardIterator"]


def _probe_kinesis_records(target: Target, side: str) -> None:
    iterator = target._found.get(("kinesis-iterator", side))
    if iterator:  # else the iterator's own probe reported why there is none
        _kinesis(target, side).get_records(ShardIterator=iterator, Limit=1)


def _bucket(target: Target) -> S3Location:
    assert target.backup is not None
    return target.backup


def _s3() -> Any:
    return clients.s3(purpose=PURPOSE)


def _probe_list(target: Target, _: str) -> None:
    where = _bucket(target)
    _s3().list_objects_v2(Bucket=where.bucket, Prefix=where.prefix, MaxKeys=1)


def _probe_list_versions(target: Target, _: str) -> None:
    where = _bucket(target)
    _s3().list_object_versions(Bucket=where.bucket, Prefix=where.prefix, MaxKeys=1)


def _probe_versioning(target: Target, _: str) -> None:
    _s3().get_bucket_versioning(Bucket=_bucket(target).bucket)


def _probe_get_object(target: Target, _: str) -> None:
    where = _bucket(target)
    _s3().head_object(Bucket=where.bucket, Key=where.key(".replicator-permission-check"))


def _probe_get_version(target: Target, _: str) -> None:
    where = _bucket(target)
    key = where.key(".replicator-permission-check")
    _s3().head_object(Bucket=where.bucket, Key=key, VersionId="null")


_PROBES: dict[tuple[str, str], Probe] = {
    (iam.TABLE, "dynamodb:DescribeTable"): _probe_describe,
    (iam.TABLE, "dynamodb:GetItem"): _probe_get,
    (iam.TABLE, "dynamodb:BatchGetItem"): _probe_batch_get,
    (iam.TABLE, "dynamodb:Scan"): _probe_scan,
    (iam.TABLE, "dynamodb:PutItem"): _probe_put,
    (iam.TABLE, "dynamodb:DeleteItem"): _probe_delete,
    (iam.TABLE, "dynamodb:BatchWriteItem"): _probe_batch_write,
    (iam.TABLE, "dynamodb:DescribeTimeToLive"): _plain("describe_time_to_live"),
    (iam.TABLE, "dynamodb:ListTagsOfResource"): _plain("list_tags_of_resource"),
    (iam.TABLE, "dynamodb:DescribeContinuousBackups"): _plain("describe_continuous_backups"),
    (iam.TABLE, "dynamodb:ListExports"): _plain("list_exports"),
    (iam.EXPORT, "dynamodb:DescribeExport"): _probe_describe_export,
    (iam.STREAM, "dynamodb:DescribeStream"): _probe_describe_stream,
    (iam.STREAM, "dynamodb:GetShardIterator"): _stream_iterator,
    (iam.STREAM, "dynamodb:GetRecords"): _probe_stream_records,
    (iam.KINESIS, "kinesis:DescribeStreamSummary"): _probe_kinesis_summary,
    (iam.KINESIS, "kinesis:ListShards"): _probe_kinesis_shards,
    (iam.KINESIS, "kinesis:GetShardIterator"): _kinesis_iterator,
    (iam.KINESIS, "kinesis:GetRecords"): _probe_kinesis_records,
    (iam.BUCKET, "s3:ListBucket"): _probe_list,
    (iam.BUCKET, "s3:ListBucketVersions"): _probe_list_versions,
    (iam.BUCKET, "s3:GetBucketVersioning"): _probe_versioning,
    (iam.OBJECTS, "s3:GetObject"): _probe_get_object,
    (iam.OBJECTS, "s3:GetObjectVersion"): _probe_get_version,
}


def probed(
    role: str, *, kinesis: bool = False, backup: bool = False, export: bool = False
) -> Iterator[str]:
    """The actions of ``role`` the check calls (tests remove them one at a time)."""
    for grant in iam.grants(role, kinesis=kinesis, backup=backup, export=export):
        for action in grant.actions:
            if (grant.resource, action) in _PROBES:
                yield action


class PermissionsMissing(ConfigurationError):
    """Permissions a role lacks; printed as one ``error:`` line each."""

    def __init__(self, role: str, missing: Sequence[Missing]) -> None:
        self.role, self.missing = role, list(missing)
        super().__init__("\nerror: ".join(f"{role}: {m}" for m in missing))


def require(role: str, target: Target) -> None:
    """Raise ``PermissionsMissing`` naming every permission ``role`` lacks over ``target``."""
    missing = check(role, target)
    if missing:
        raise PermissionsMissing(role, missing)


def after(role: str, target: Target, checks: Callable[[], T]) -> T:
    """Run the command's own checks (reachability, schemas: an unreachable endpoint is told
    once, not once per permission), then ``require``; a check refused for want of a permission
    gives way to the whole list of what is missing."""
    try:
        found = checks()
    except AccessDeniedError:
        require(role, target)
        raise
    require(role, target)
    return found
