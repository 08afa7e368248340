"""Benchmark `replicator migrate` on moto: time per phase against the backend's own ceiling.

    .venv/bin/python bench/migrate.py [--items 100000] [--segments 8] [--workers 2]

Starts its own moto (server mode) and Redis on free ports and ``--workers`` worker processes
(each ``-c 2``: one consumes the bulk queue, the others both queues), fills a source table
(stream on, KEYS_ONLY) with ``--items`` items of ~150 bytes, then measures in the same run:

* the ceiling: one process, ``--segments`` threads, each scanning its segment of the source and
  writing every item to a fresh table with BatchWriteItem: the raw scan+write work of a backfill
  with nothing else done (items / seconds);
* ``replicator migrate SOURCE TARGET --create --exit-when-ready`` with a rate above the
  ceiling (so the token bucket never waits): the seconds of each phase from its ready line,
  items per second for the backfill (items copied / seconds) and the verify (items compared on
  both sides / seconds), and each as a share of the ceiling.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tasks.core.iters import batched  # noqa: E402
from tests.support import servers  # noqa: E402
from tests.support.tables import client, create_table  # noqa: E402


def fill(moto_url: str, table: str, n: int) -> None:
    def part(start: int) -> None:
        ddb = client(moto_url)
        for base in range(start, min(n, start + 10_000), 25):
            ddb.batch_write_item(
                RequestItems={
                    table: [
                        {
                            "PutRequest": {
                                "Item": {
                                    "id": {"S": f"k{i:08d}"},
                                    "v": {"N": str(i)},
                                    "pad": {"S": "x" * 100},
                                }
                            }
                        }
                        for i in range(base, min(n, base + 25))
                    ]
                }
            )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(part, range(0, n, 10_000)))


def ceiling(moto_url: str, source: str, segments: int, n: int) -> float:
    """Scan every segment and BatchWriteItem what it finds into a fresh table."""
    create_table(moto_url, "ceiling")

    def segment(i: int) -> int:
        ddb, copied = client(moto_url), 0
        pages = ddb.get_paginator("scan").paginate(
            TableName=source, Segment=i, TotalSegments=segments
        )
        for page in pages:
            for chunk in batched(page["Items"], 25):
                ddb.batch_write_item(
                    RequestItems={"ceiling": [{"PutRequest": {"Item": it}} for it in chunk]}
                )
                copied += len(chunk)
        return copied

    began = time.monotonic()
    with ThreadPoolExecutor(segments) as pool:
        copied = sum(pool.map(segment, range(segments)))
    assert copied == n, (copied, n)
    return n / (time.monotonic() - began)


def migrate(env: dict[str, str], moto_url: str, segments: int, log: Path) -> dict[str, Any]:
    args = [
        str(Path(sys.executable).parent / "replicator"),
        "migrate",
        f"{moto_url}/source",
        f"{moto_url}/target",
        "--create",
        "--segments",
        str(segments),
        "--rate",
        "1000000",
        "--exit-when-ready",
        "--name",
        "bench",
    ]
    with log.open("w") as out:
        done = subprocess.run(
            args, env=env, stdout=subprocess.PIPE, stderr=out, text=True, check=False
        )
    if done.returncode != 0:
        sys.exit(f"migrate exited {done.returncode}; see {log}")
    line = next(x for x in done.stdout.splitlines() if '"phase": "ready"' in x)
    return dict(json.loads(line))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()

    redis_server, moto = servers.start_redis(), servers.start_moto()
    workdir = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    env = {**servers.process_env(url), "REPLICATOR_LOG_LEVEL": "warning"}
    workers = []
    try:
        create_table(moto.url, "source", stream="KEYS_ONLY")
        began = time.monotonic()
        fill(moto.url, "source", options.items)
        loaded = time.monotonic() - began
        top = ceiling(moto.url, "source", options.segments, options.items)
        for i in range(options.workers):
            queues = "bulk" if i == 0 and options.workers > 1 else None
            workers.append(servers.start_worker(env, 2, queues, workdir, name=f"w{i}"))
        report = migrate(env, moto.url, options.segments, workdir / "migrate.log")
    finally:
        for worker in workers:
            worker.stop()
        moto.stop()
        redis_server.stop()
    print_table(options, loaded, top, report)


def print_table(
    options: argparse.Namespace, loaded: float, top: float, report: dict[str, Any]
) -> None:
    n, seconds = options.items, report["seconds"]
    rates = {
        "backfill": report["items_copied"] / seconds["backfill"],
        "verify": n / seconds["verify"],
    }
    print(
        f"\nreplicator migrate on moto: {n} items, {options.segments} backfill segments, "
        f"{options.workers} workers (-c 2); loading the source took {loaded:.1f} s"
    )
    print(f"ceiling (scan + BatchWriteItem, {options.segments} threads): {top:,.0f} items/s\n")
    print(f"| {'phase':<10} | {'seconds':>8} | {'items/s':>9} | {'of ceiling':>10} |")
    print(f"|{'-' * 12}|{'-' * 10}:|{'-' * 11}:|{'-' * 12}:|")
    for phase in ("preflight", "create", "capture", "backfill", "catch-up", "verify", "ready"):
        rate = rates.get(phase)
        shown = f"{rate:,.0f}" if rate else ""
        share = f"{rate / top:.0%}" if rate else ""
        print(f"| {phase:<10} | {seconds.get(phase, 0):>8.1f} | {shown:>9} | {share:>10} |")
    print(f"| {'total':<10} | {sum(seconds.values()):>8.1f} | {'':>9} | {'':>10} |")
    print(
        f"\nitems copied {report['items_copied']}, discrepancies found "
        f"{report['discrepancies_found']}, repaired {report['discrepancies_repaired']}, "
        f"dead letters {report['dead_letters']}"
    )


if __name__ == "__main__":
    main()
