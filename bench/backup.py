"""Benchmark backup-table and restore-table on moto against the same run's raw ceilings.

    .venv/bin/python bench/backup.py [--sizes 10000,100000] [--workers 1,2] [--repeat 2]

For each table size: fill a table, measure the raw parallel Scan and BatchWriteItem rates (one
thread per worker, no S3, no gzip: the ceilings), then time ``backup-table --segments W`` and
``restore-table --segments W`` with W worker processes, and the peak memory of a one-segment
backup run in its own process. Prints one JSON line per measurement and a summary table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tasks.core.iters import batched  # noqa: E402
from tests.support import servers  # noqa: E402
from tests.support.tables import client, create_table  # noqa: E402

BIN = Path(sys.executable).parent


def fill(url: str, table: str, count: int) -> None:
    ddb = client(url)
    create_table(url, table)
    pad = "x" * 100

    def chunk(start: int) -> None:
        items = [
            {
                "id": {"S": f"item-{i:07d}"},
                "n": {"N": str(i)},
                "pad": {"S": pad},
                "m": {"M": {"ss": {"SS": ["a", "b"]}, "b": {"B": bytes([i % 256])}}},
            }
            for i in range(start, min(start + 25, count))
        ]
        ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": i}} for i in items]})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(chunk, range(0, count, 25)))


def raw_scan(url: str, table: str, threads: int) -> tuple[int, float, list[dict[str, Any]]]:
    """Items scanned per second with ``threads`` parallel segments; also the items."""
    ddb = client(url)

    def segment(i: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        args: dict[str, Any] = {"TableName": table, "Segment": i, "TotalSegments": threads}
        while True:
            page = ddb.scan(**args)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        items = [i for part in pool.map(segment, range(threads)) for i in part]
    return len(items), time.monotonic() - started, items


def raw_write(url: str, table: str, items: list[dict[str, Any]], threads: int) -> float:
    ddb = client(url)
    create_table(url, table)
    chunks = list(batched(items, 25))

    def write(chunk: list[dict[str, Any]]) -> None:
        pending = [{"PutRequest": {"Item": i}} for i in chunk]
        while pending:
            response = ddb.batch_write_item(RequestItems={table: pending})
            pending = response.get("UnprocessedItems", {}).get(table, [])

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, chunks))
    return time.monotonic() - started


def command(env: dict[str, str], *args: str) -> tuple[float, dict[str, Any], int]:
    """Seconds, the JSON summary and the peak RSS (KiB) of one command run."""
    started = time.monotonic()
    process = subprocess.Popen(
        [str(BIN / args[0]), *args[1:]],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    out = process.stdout.read() if process.stdout else ""
    err = process.stderr.read() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{args[0]} failed: {err[-2000:]}")
    return seconds, json.loads(out.splitlines()[-1]), usage.ru_maxrss


def environment(moto: servers.Server, redis: servers.Server) -> dict[str, str]:
    redis_url = f"redis://127.0.0.1:{redis.port}/0"
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": moto.url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "REPLICATOR_REDIS_URL": redis_url,
    }


def run_size(
    moto: servers.Server, env: dict[str, str], size: int, workers: list[int], repeat: int
) -> Iterator[dict[str, Any]]:
    url = moto.url
    servers.reset_moto(url)
    client(url, "s3").create_bucket(Bucket="bench")
    fill(url, "source", size)
    args = ["--jobid", "m", "--segment", "0", "--segments", "1"]
    memory_kib = command(env, "backup-table", f"{url}/source", "s3://bench/mem", *args)[2]
    yield {"size": size, "measure": "backup peak RSS (1 segment, KiB)", "value": memory_kib}
    log_dir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    for count in workers:
        procs = [
            servers.start_worker(env, 1, "bulk", log_dir, name=f"b{count}-{i}")
            for i in range(count)
        ]
        try:
            runs = [measure(url, env, size, count, f"{count}-{n}") for n in range(repeat)]
        finally:
            for proc in procs:
                proc.stop()
        best = {k: max(r[k] for r in runs) for k in runs[0]}  # best of the repeats, per rate
        yield from rows(size, count, best)


def measure(url: str, env: dict[str, str], size: int, count: int, name: str) -> dict[str, float]:
    """Items/s of the raw ceilings and of the two commands, with ``count`` workers."""
    scanned, scan_s, items = raw_scan(url, "source", count)
    write_s = raw_write(url, f"raw-{name}", items, count)
    segments = ["--segments", str(count)]
    _, backup, _ = command(
        env, "backup-table", f"{url}/source", "s3://bench/dumps", "--jobid", name, *segments
    )
    _, restore, _ = command(
        env,
        "restore-table",
        f"s3://bench/dumps/{name}",
        f"{url}/restored-{name}",
        "--create",
        *segments,
    )
    assert backup["items"] == size and restore["restored"] == size, (backup, restore)
    # the job's own time (the summary's seconds), not the process start-up around it
    return {
        "scan": scanned / scan_s,
        "write": size / write_s,
        "backup": size / backup["seconds"],
        "restore": size / restore["seconds"],
    }


def rows(size: int, count: int, best: dict[str, float]) -> Iterator[dict[str, Any]]:
    for command_name, rate, ceiling in (
        ("backup-table", "backup", "scan"),
        ("restore-table", "restore", "write"),
    ):
        yield {
            "size": size,
            "workers": count,
            "measure": f"{command_name} items/s",
            "value": round(best[rate]),
            "ceiling": round(best[ceiling]),
            "share": round(best[rate] / best[ceiling], 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeat", type=int, default=1, help="Best of this many runs per row.")
    args = parser.parse_args()
    moto, redis = servers.start_moto(), servers.start_redis()
    try:
        env = environment(moto, redis)
        for size in (int(s) for s in args.sizes.split(",")):
            workers = [int(w) for w in args.workers.split(",")]
            for row in run_size(moto, env, size, workers, args.repeat):
                print(json.dumps(row), flush=True)
    finally:
        moto.stop()
        redis.stop()


if __name__ == "__main__":
    main()
