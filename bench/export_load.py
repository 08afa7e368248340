"""Benchmark loading a DynamoDB export into a table: our restore against a bare client.

    .venv/bin/python bench/export_load.py [--items 1000000] [--files 20] [--workers 2]

An export of ``--items`` items in AWS's layout (manifest-summary.json, manifest-files.json and
``--files`` gzip data files of ``{"Item": ...}`` lines) is written to moto's S3; then, in the same
run, against dynalite:

* bare: one process per worker, each with 8 threads sending BatchWriteItem of 25 items (the
  items already in memory: no S3, no gzip, no JSON): the ceiling;
* ours: ``restore-table s3://.../AWSDynamoDB/ID TABLE --segments W`` with W worker processes
  (``-c 1``, the bulk queue), reading the files from S3 as streams.

Prints items/s of both, ours as a share of the ceiling, and each worker's resident memory
sampled every second while it loads (first and last sample, peak).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import multiprocessing
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.backup import command, environment  # noqa: E402
from bench.procs import rss_mib  # noqa: E402
from tests.support import servers  # noqa: E402
from tests.support.tables import client, create_table  # noqa: E402

FOLDER = "exports/AWSDynamoDB/01700000000000-bench000"


def item(i: int) -> dict[str, Any]:
    return {"id": {"S": f"item-{i:08d}"}, "n": {"N": str(i)}, "pad": {"S": "x" * 100}}


def write_export(url: str, items: int, files: int) -> None:
    s3 = client(url, "s3")
    s3.create_bucket(Bucket="bench")
    per_file = -(-items // files)
    manifest = []
    for number in range(files):
        lines = (
            json.dumps({"Item": item(i)})
            for i in range(number * per_file, min(items, (number + 1) * per_file))
        )
        body = gzip.compress("\n".join(lines).encode(), compresslevel=1)
        key = f"{FOLDER}/data/file-{number:03d}.json.gz"
        s3.put_object(Bucket="bench", Key=key, Body=body)
        count = min(items, (number + 1) * per_file) - number * per_file
        manifest.append(json.dumps({"itemCount": count, "dataFileS3Key": key}))
    s3.put_object(
        Bucket="bench", Key=f"{FOLDER}/manifest-files.json", Body="\n".join(manifest).encode()
    )
    summary = {
        "version": "2020-06-30",
        "exportArn": "arn:aws:dynamodb:us-east-1:123456789012:table/source/export/"
        + FOLDER.rsplit("/", 1)[1],
        "tableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/source",
        "exportTime": "2026-12-01T00:00:00.000Z",
        "manifestFilesS3Key": f"{FOLDER}/manifest-files.json",
        "itemCount": items,
        "outputFormat": "DYNAMODB_JSON",
        "exportType": "FULL_EXPORT",
    }
    s3.put_object(
        Bucket="bench", Key=f"{FOLDER}/manifest-summary.json", Body=json.dumps(summary).encode()
    )


def _bare_process(url: str, table: str, start: int, stop: int) -> None:
    ddb = client(url)

    def send(first: int) -> None:
        pending = [{"PutRequest": {"Item": item(i)}} for i in range(first, min(stop, first + 25))]
        while pending:
            answer = ddb.batch_write_item(RequestItems={table: pending})
            pending = answer.get("UnprocessedItems", {}).get(table, [])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(start, stop, 25)))


def bare(url: str, items: int, processes: int) -> float:
    """Items/s of bare BatchWriteItem clients, one process per worker."""
    create_table(url, "bare")
    share = -(-items // processes)
    started = time.monotonic()
    procs = [
        multiprocessing.Process(
            target=_bare_process, args=(url, "bare", p * share, min(items, (p + 1) * share))
        )
        for p in range(processes)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return items / (time.monotonic() - started)


def ours(url: str, env: dict[str, str], items: int, workers: int) -> tuple[float, list[Any]]:
    create_table(url, "loaded")
    log_dir = Path(tempfile.mkdtemp(prefix="bench-export-"))
    procs = [servers.start_worker(env, 1, "bulk", log_dir, name=f"e{i}") for i in range(workers)]
    samples: dict[int, list[float]] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            for proc in procs:
                for pid in proc.pool_pids():
                    samples.setdefault(pid, []).append(rss_mib(pid))

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        _, summary, _ = command(
            env,
            "restore-table",
            f"s3://bench/{FOLDER}",
            f"{url}/loaded",
            "--segments",
            str(workers * 2),
        )
    finally:
        done.set()
        for proc in procs:
            proc.stop()
    assert summary["restored"] == items, summary
    memory = [(s[0], s[-1], max(s)) for s in samples.values() if s]
    return items / summary["seconds"], memory


@contextlib.contextmanager
def _dynalite() -> Iterator[str]:
    server = servers.start_dynalite()
    try:
        yield server.url
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    moto, redis = servers.start_moto(), servers.start_redis()
    try:
        env = environment(moto, redis)
        write_export(moto.url, args.items, args.files)
        # Each run writes into a fresh dynalite of its own: neither meets the other's items.
        with _dynalite() as url:
            ceiling = bare(url, args.items, args.workers)
        with _dynalite() as url:
            rate, memory = ours(url, env, args.items, args.workers)
    finally:
        moto.stop()
        redis.stop()
    print(f"{args.items} items in {args.files} export files, {args.workers} workers, dynalite")
    print("| run | items/s | of the ceiling |")
    print("|---|---:|---:|")
    print(f"| bare BatchWriteItem, {args.workers} processes x 8 threads | {ceiling:,.0f} | 100 % |")
    print(f"| restore-table from the export | {rate:,.0f} | {rate / ceiling:.0%} |")
    for first, last, peak in memory:
        print(f"worker pool process RSS MiB: first {first:.0f}, last {last:.0f}, peak {peak:.0f}")


if __name__ == "__main__":
    main()
