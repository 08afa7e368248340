"""Create the sandbox's demo tables (and backup bucket) on the local endpoint; idempotent.

Run once by the ``demo-tables`` service of the compose profile ``local``: PRIMARY_TABLE (with a
stream) and REPLICA_TABLE, same key schema (id S, seq N), at the endpoint their locations name,
and the bucket of BACKUP_URL when set. Waits up to a minute for the endpoint to answer.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from tasks.core.config import settings
from tasks.core.locations import TableLocation, parse_s3

KEYS = [{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "seq", "KeyType": "RANGE"}]
ATTRIBUTES = [
    {"AttributeName": "id", "AttributeType": "S"},
    {"AttributeName": "seq", "AttributeType": "N"},
]


def _client(location: TableLocation) -> Any:
    return boto3.client("dynamodb", region_name=location.region, endpoint_url=location.endpoint_url)


def _wait_for(ddb: Any, endpoint: str | None) -> None:
    for _ in range(60):
        try:
            ddb.list_tables()
            return
        except (BotoCoreError, ClientError):
            time.sleep(1)
    sys.exit(f"error: the local endpoint {endpoint} did not answer within 60s")


def _create(location: TableLocation, stream: bool) -> None:
    ddb = _client(location)
    _wait_for(ddb, location.endpoint_url)
    if location.table in ddb.list_tables()["TableNames"]:
        print(f"[exists] {location}")
        return
    extra: dict[str, Any] = {}
    if stream:
        extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    ddb.create_table(
        TableName=location.table,
        KeySchema=KEYS,
        AttributeDefinitions=ATTRIBUTES,
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )
    print(f"[created] {location}")


def main() -> None:
    primary = settings().location(os.environ["PRIMARY_TABLE"])
    if primary.endpoint_url is None:
        sys.exit(
            "error: demo-tables only creates tables on a local endpoint (PRIMARY_TABLE="
            f"{primary}); point PRIMARY_TABLE at http://moto:5000/TABLE or skip this service"
        )
    _create(primary, stream=True)
    if os.environ.get("REPLICA_TABLE"):
        _create(settings().location(os.environ["REPLICA_TABLE"]), stream=False)
    if os.environ.get("BACKUP_URL"):
        bucket = parse_s3(os.environ["BACKUP_URL"]).bucket
        s3 = boto3.client("s3", region_name=primary.region)
        if bucket in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            print(f"[exists] s3://{bucket}")
            return
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        print(f"[created] s3://{bucket}")


if __name__ == "__main__":
    main()
