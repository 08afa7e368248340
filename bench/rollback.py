"""Benchmark a rollback: the same changed keys undone by a whole-table and by a --keys restore.

    .venv/bin/python bench/rollback.py [--items 20000] [--changed 1000]

A table of ``--items`` items is backed up (one version each, as the incremental backup writes
them), then a bad deploy changes ``--changed`` keys (60 % overwritten, 20 % deleted, 20 % new
junk) and is backed up too. Each run puts the table back in its bad state and undoes it:
``restore-table --at T`` over the whole table, the same with ``--compare table`` (every key read
from the table instead of trusting the latest backed-up state), and ``--keys`` with the changed
keys. Everything goes through a counting proxy in front of moto: the writes and S3 requests in
the table are what reached moto. The ceilings are bare boto3 calls through the same proxy in the
same run: listing every version of the backup, reading the changed keys' versions (16
threads), writing the changed keys, and writing every item (what a restore that rewrites the
whole table costs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.backup import command, environment  # noqa: E402
from tasks.backup.incremental import apply_many  # noqa: E402
from tasks.core.iters import batched  # noqa: E402
from tasks.core.keys import Key  # noqa: E402
from tasks.core.locations import S3Location  # noqa: E402
from tasks.core.typed_json import KeyAttribute, KeySchema  # noqa: E402
from tests.support import servers  # noqa: E402
from tests.support.faultproxy import FaultProxy  # noqa: E402
from tests.support.tables import client, create_table  # noqa: E402

FOLDER = S3Location("bench", "inc/primary")
SCHEMA = KeySchema(KeyAttribute("id", "S"))


def item(i: int, value: str) -> dict[str, Any]:
    return {"id": {"S": f"item-{i:07d}"}, "v": {"S": value}, "pad": {"S": "x" * 100}}


def write(url: str, items: list[dict[str, Any]], deletes: Sequence[dict[str, Any]] = ()) -> None:
    ddb = client(url)
    requests = [{"PutRequest": {"Item": i}} for i in items]
    requests += [{"DeleteRequest": {"Key": k}} for k in deletes]

    def send(chunk: list[dict[str, Any]]) -> None:
        pending = chunk
        while pending:
            answer = ddb.batch_write_item(RequestItems={"primary": pending})
            pending = answer.get("UnprocessedItems", {}).get("primary", [])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, batched(requests, 25)))


def back_up(items: list[dict[str, Any]], deletes: Sequence[dict[str, Any]] = ()) -> None:
    for chunk in batched(items, 500):
        _, failed = apply_many(FOLDER, SCHEMA, chunk, [])
        assert not failed, failed
    _, failed = apply_many(FOLDER, SCHEMA, [], [Key.of(k) for k in deletes])
    assert not failed, failed


def prepare(url: str, size: int, changed: int) -> tuple[str, Callable[[], None], list[str]]:
    """The table and its backup; returns T, how to redo the bad deploy, the changed keys."""
    create_table(url, "primary")
    s3 = client(url, "s3")
    s3.create_bucket(Bucket="bench")
    s3.put_bucket_versioning(Bucket="bench", VersioningConfiguration={"Status": "Enabled"})
    good = [item(i, "good") for i in range(size)]
    write(url, good)
    back_up(good)
    time.sleep(1.1)  # S3 stamps versions to the second
    at = datetime.now(UTC).isoformat()
    time.sleep(1.1)
    over, gone = int(changed * 0.6), int(changed * 0.2)
    bad = [item(i, "bad") for i in range(over)]
    junk = [item(size + i, "junk") for i in range(changed - over - gone)]
    deleted = [{"id": item(i, "")["id"]} for i in range(over, over + gone)]
    back_up(bad + junk, deleted)

    def deploy() -> None:
        write(url, bad + junk, deleted)

    keys = [json.dumps({"id": i["id"]["S"]}) for i in bad + junk] + [
        json.dumps({"id": k["id"]["S"]}) for k in deleted
    ]
    return at, deploy, keys


def timed(proxy: FaultProxy, run: Callable[[], Any]) -> dict[str, Any]:
    proxy.reset_counts()
    before = len(proxy.calls())
    started = time.monotonic()
    summary = run()
    seconds = time.monotonic() - started
    calls = proxy.calls()[before:]
    listings = sum(1 for c in calls if c.operation == "GET" and "versions" in c.path)
    return {
        "seconds": round(seconds, 2),  # wall time, a command's start-up included
        "writes": proxy.keys_count("BatchWriteItem", "primary"),
        "s3 lists": listings,
        "s3 gets": sum(1 for c in calls if c.operation == "GET") - listings,
        "s3 heads": sum(1 for c in calls if c.operation == "HEAD"),
        "summary": summary if isinstance(summary, dict) else None,
    }


def ceilings(proxy: FaultProxy, size: int, keys: list[str]) -> dict[str, dict[str, Any]]:
    s3 = client(proxy.url, "s3")

    def list_all() -> list[dict[str, Any]]:
        pages = s3.get_paginator("list_object_versions").paginate(Bucket="bench", Prefix="inc/")
        return [v for page in pages for v in page.get("Versions", [])]

    versions: list[dict[str, Any]] = []
    rows = {"bare: list every version": timed(proxy, lambda: versions.extend(list_all()))}
    wanted = {f"inc/primary/{Key.of({'id': {'S': json.loads(k)['id']}}).id}" for k in keys}
    mine = [v for v in versions if v["Key"] in wanted][: len(keys)]

    def get_all() -> None:
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda v: s3.get_object(Bucket="bench", Key=v["Key"], VersionId=v["VersionId"])[
                        "Body"
                    ].read(),
                    mine,
                )
            )

    rows["bare: get the changed keys' versions"] = timed(proxy, get_all)
    rows["bare: write the changed keys"] = timed(
        proxy, lambda: write(proxy.url, [item(i, "good") for i in range(len(keys))])
    )
    rows["bare: write every item"] = timed(
        proxy, lambda: write(proxy.url, [item(i, "good") for i in range(size)])
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--changed", type=int, default=1000)
    args = parser.parse_args()
    moto, redis = servers.start_moto(), servers.start_redis()
    proxy = FaultProxy(moto.url)
    proxy.start()
    try:
        env = {**environment(moto, redis), "AWS_ENDPOINT_URL_S3": proxy.url}
        os.environ.update(env)  # this process backs the table up before the runs
        at, deploy, keys = prepare(moto.url, args.items, args.changed)
        keys_file = Path(tempfile.mkdtemp(prefix="bench-rollback-")) / "keys"
        keys_file.write_text("\n".join(keys) + "\n")
        target = f"{proxy.url}/primary"
        source = "s3://bench/inc/primary"
        runs: dict[str, dict[str, Any]] = {}

        def rollback(*extra: str) -> Callable[[], Any]:
            return lambda: command(env, "restore-table", source, target, "--at", at, *extra)[1]

        for name, extra in (
            ("whole table (plan only, --dry-run)", ("--dry-run",)),
            ("whole table", ()),
            ("whole table, --compare table", ("--compare", "table")),
            ("--keys (the changed keys)", ("--keys", str(keys_file))),
        ):
            deploy()
            runs[name] = timed(proxy, rollback(*extra))
        runs.update(ceilings(proxy, args.items, keys))
    finally:
        proxy.stop()
        moto.stop()
        redis.stop()
    print(f"{args.items} items, {args.changed} changed keys; moto through a counting proxy")
    header = ("run", "writes", "seconds", "s3 lists", "s3 gets", "s3 heads")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, row in runs.items():
        print(f"| {name} | " + " | ".join(str(row[h]) for h in header[1:]) + " |")
    for name, row in runs.items():
        if row["summary"]:
            print(json.dumps({"run": name, **row["summary"]}, sort_keys=True))


if __name__ == "__main__":
    main()
