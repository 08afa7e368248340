"""Benchmark `replicator verify` on dynalite: items checked per second, reads, CPU, the rate cap.

    .venv/bin/python bench/verify.py [--items 20000] [--segments 4] [--repeat 3]
        [--budget-rate 600] [--every 0.1s] [--latency-ms 0]

Starts its own dynalite (node_modules/.bin/dynalite; `npm install` first), Redis and one worker
``-c 2`` (started once, used by every verifier run), fills a primary and a replica with the same
``--items`` items of about 100 bytes (locations ``us-east-1/TABLE``, found through
``AWS_ENDPOINT_URL_DYNAMODB``), then measures in the same run:

* the ceiling: a bare boto3 client doing the least a pass has to do, a full Scan of both tables
  with ``--segments`` segments each (one thread per segment and table, the clients built and
  connected before the clock starts); items per second = the items of one table / seconds.
  botocore parses every page, in one process: on large tables that CPU, not dynalite, is its
  limit, and the workers' own scan code (``tasks.aws.fast_scan``) can go past it;
* the verifier with no cap: ``replicator verify PRIMARY REPLICA --every 0.1s --segments N --rate
  1000000 --passes 1``, a fresh ``--name`` each run (so a fresh pass), until its pass line;
  items checked per second = the pass line's ``items`` / its ``seconds`` (the pass's time, from
  its start to its end: the verifier's start-up is not in it), and its share of the ceiling;
* the rate held: the same pass with ``--rate R`` (``--budget-rate``, item reads per second over
  both tables): the pass line's ``reads`` / ``seconds`` against R. The tables must be large
  enough for the pass to last over a minute at that rate (2 x items / R seconds, printed).

Both verifier runs use ``--every 0.1s`` (``--every``): segment *i* of a pass is sent *i* / N of
that after it starts (in a shuffled order), so a pass takes at least (N - 1) / N of it however
fast the worker is (printed as the pass's floor), and its end is noticed on the verifier's next
tick (every 0.25 s). In service ``--every`` is hours and spreads a pass on purpose; here it is
short so that the pass measures the sweep, not the spreading (with ``--every 1s`` a 20,000-item
pass takes the 1 s it was given).

Every row gives items per second (the best of ``--repeat`` runs; the slowest in brackets; the
rate test runs once), its share of the ceiling, the item reads per item checked (scan reads of
both tables, and the consistent point reads of any candidate, as the segments count them: 2 when
the tables are equal) and the CPU seconds per 1,000 items, from /proc: the worker's processes
(main process + pool; for the ceiling: its scanning threads) and the verifier process, both
sampled every 10 ms and counted over the pass's own seconds.

``--latency-ms`` delays every DynamoDB call of the clients, the worker and the verifier by that
much (a proxy in front of dynalite, in this process), as if the tables were a network hop away
(a Scan page holds up to 1 MB: about 10,000 of these items, so a pass makes few calls).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.diff import put_all  # noqa: E402
from bench.procs import cpu_seconds, dynalite_env, latency_proxy  # noqa: E402
from tasks.core.times import parse_duration  # noqa: E402
from tests.support import servers  # noqa: E402
from tests.support.tables import client, create_table  # noqa: E402

PRIMARY, REPLICA = "primary", "replica"
REPLICATOR = str(Path(sys.executable).parent / "replicator")
NO_CAP = 1_000_000  # item reads per second: no cap at all on dynalite
DELAYED = ("Scan", "BatchGetItem", "GetItem", "DescribeTable")
SAMPLE_SECONDS = 0.01
_names = itertools.count()  # the verifier runs' pipeline names


@dataclass
class Stack:
    """The servers of a run and the environment every process gets."""

    dynalite: servers.Server
    redis: servers.Server
    env: dict[str, str]
    log_dir: Path
    tables_url: str  # where the clients, the worker and the verifier send DynamoDB calls


@dataclass
class Run:
    items: int
    seconds: float
    reads: int
    cpu: dict[str, float]  # CPU seconds: "workers", "verifier"
    line: dict[str, Any] = field(default_factory=dict)  # the verifier's pass line

    @property
    def rate(self) -> float:
        return self.items / self.seconds


@dataclass
class Row:
    name: str
    runs: list[Run] = field(default_factory=list)

    @property
    def best(self) -> Run:
        return max(self.runs, key=lambda r: r.rate)

    def per_1000(self, who: str) -> str:
        best = self.best
        return f"{1000 * best.cpu[who] / best.items:.4f}" if who in best.cpu else "-"


# -- set-up ------------------------------------------------------------------------------------


@contextmanager
def stack(args: argparse.Namespace, log_dir: Path) -> Iterator[Stack]:
    dynalite = servers.start_dynalite()
    store = servers.start_redis(workdir=log_dir)
    proxy = latency_proxy(dynalite.url, args.latency_ms, DELAYED)  # clients, worker, verifier
    tables_url = proxy.url if proxy else dynalite.url
    url = f"redis://127.0.0.1:{store.port}/0"
    env = dynalite_env(url, tables_url)
    try:
        yield Stack(dynalite, store, env, log_dir, tables_url)
    finally:
        if proxy:
            proxy.stop()
        for server in (dynalite, store):
            server.stop()


def item(i: int) -> dict[str, Any]:
    """About 100 bytes: names and values of ``id``, ``v`` and ``pad``."""
    return {"id": {"S": f"k{i:08d}"}, "v": {"N": str(i)}, "pad": {"S": "x" * 80}}


def fill(url: str, items: int) -> None:
    """The same items in both tables."""
    for name in (PRIMARY, REPLICA):
        create_table(url, name)
        put_all(url, name, [item(i) for i in range(items)])


# -- the ceiling: a bare boto3 client ----------------------------------------------------------


def _scan_segment(ddb: Any, table: str, segment: int, segments: int) -> tuple[int, float]:
    """Items read, and the CPU seconds this thread used reading them."""
    began = time.thread_time()
    count, args = 0, {"TableName": table, "Segment": segment, "TotalSegments": segments}
    while True:
        page = ddb.scan(**args)
        count += len(page["Items"])
        if "LastEvaluatedKey" not in page:
            return count, time.thread_time() - began
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def ceiling_run(run: Stack, segments: int) -> Run:
    jobs = [(table, s) for table in (PRIMARY, REPLICA) for s in range(segments)]
    clients = [client(run.tables_url) for _ in jobs]
    for ddb in clients:
        ddb.describe_table(TableName=PRIMARY)  # connected before the clock starts
    with ThreadPoolExecutor(len(jobs)) as pool:
        began = time.monotonic()
        found = list(pool.map(lambda c, j: _scan_segment(c, j[0], j[1], segments), clients, jobs))
        seconds = time.monotonic() - began
    primary = sum(n for (table, _), (n, _) in zip(jobs, found, strict=True) if table == PRIMARY)
    reads, cpu = sum(n for n, _ in found), sum(used for _, used in found)
    return Run(primary, seconds, reads, {"workers": cpu})


# -- the verifier --------------------------------------------------------------------------------


def pass_line(output: str) -> dict[str, Any] | None:
    """The verifier's pass line (its log lines have an ``event``), once it is whole."""
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        try:
            found = json.loads(line)
        except json.JSONDecodeError:  # being written
            continue
        if isinstance(found, dict) and "pass" in found and "event" not in found:
            return found
    return None


def verify_run(
    run: Stack, worker: servers.Worker, rate: float, args: argparse.Namespace, timeout: float = 600
) -> Run:
    """One ``replicator verify ... --passes 1`` under a fresh name (a fresh pass); CPU counted
    over the pass's own seconds."""
    name = f"bench-{next(_names)}"
    command = [REPLICATOR, "verify", f"us-east-1/{PRIMARY}", f"us-east-1/{REPLICA}"]
    command += ["--name", name, "--every", args.every, "--segments", str(args.segments)]
    command += ["--rate", f"{rate:.10g}", "--passes", "1"]
    workers = [worker.process.pid, *worker.pool_pids()]
    verifier = servers.start_command(command, run.env, run.log_dir, name)
    samples: list[tuple[float, float, float]] = []  # (time, verifier CPU, workers' CPU)
    deadline = time.monotonic() + timeout
    while True:
        pid = verifier.process.pid
        samples.append((time.monotonic(), cpu_seconds([pid]), cpu_seconds(workers)))
        line = pass_line(verifier.output())
        if line or verifier.process.poll() is not None or time.monotonic() > deadline:
            break
        time.sleep(SAMPLE_SECONDS)
    if line is None:
        verifier.kill()
        sys.exit(f"{name}: no pass line (exit {verifier.process.returncode}):\n{tail(verifier)}")
    status = verifier.process.wait(60)
    if status != 0:
        sys.exit(f"{name}: exit status {status}:\n{tail(verifier)}")
    ended, verifier_cpu, workers_cpu = samples[-1]
    start = ended - line["seconds"]
    _, verifier_before, workers_before = max(
        (s for s in samples if s[0] <= start), default=samples[0], key=lambda s: s[0]
    )
    cpu = {"workers": workers_cpu - workers_before, "verifier": verifier_cpu - verifier_before}
    return Run(line["items"], line["seconds"], line["reads"], cpu, line)


def tail(command: servers.Command) -> str:
    return "\n".join(command.output().splitlines()[-30:])


def wrong(run: Run, items: int) -> list[str]:
    """What the pass line got wrong about two equal tables of ``items`` items."""
    line = run.line
    problems = [f"items {line['items']} (expected {items})"] if line["items"] != items else []
    problems += [f"{k} {line[k]}" for k in ("missing", "different", "extraneous") if line[k]]
    if line["coverage"] != 1:
        problems.append(f"coverage {line['coverage']}")
    return problems


# -- the report ----------------------------------------------------------------------------------


def repeated(row: Row, times: int, once: Callable[[], Run]) -> Row:
    for _ in range(times):
        row.runs.append(once())
        print(f"  {row.name}: {row.runs[-1].rate:,.0f} items/s", file=sys.stderr, flush=True)
    return row


def measure(args: argparse.Namespace, run: Stack) -> tuple[list[Row], Run]:
    segments, flags = args.segments, f"--segments {args.segments} --every {args.every}"
    ceiling = Row(f"bare boto3 Scan, {segments} segments x 2 tables (ceiling)")
    repeated(ceiling, args.repeat, lambda: ceiling_run(run, segments))
    worker = servers.start_worker(run.env, 2, log_dir=run.log_dir, name="verify")
    try:  # the pool's processes are forked after "ready": all of them are counted
        servers.wait_until(lambda: len(worker.pool_pids()) >= 2, 30, "worker pool processes")
        free = Row(f"verify {flags} --rate {NO_CAP}, 1 worker -c 2")
        repeated(free, args.repeat, lambda: verify_run(run, worker, NO_CAP, args))
        expected = 2 * args.items / args.budget_rate
        print(
            f"  rate test: {2 * args.items:,} item reads at {args.budget_rate:g}/s, "
            f"about {expected:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        held = verify_run(run, worker, args.budget_rate, args, 3 * expected + 120)
    finally:
        worker.stop()
    capped = Row(f"verify {flags} --rate {args.budget_rate:g}, 1 worker -c 2")
    capped.runs.append(held)
    return [ceiling, free, capped], held


def report(args: argparse.Namespace, rows: list[Row], held: Run) -> None:
    ceiling = rows[0].best.rate
    print(
        f"\nitems per table: {args.items:,} (~100 bytes), segments: {args.segments}, "
        f"DynamoDB latency: {args.latency_ms:g} ms, cores: {os.cpu_count()}, "
        f"best of {args.repeat}, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        "CPU s per 1,000 items: workers (main + pool; ceiling: its scanning threads) / verifier, "
        "over the pass's seconds"
    )
    head = ("run", "items/s (slowest)", "of ceiling", "reads per item", "CPU s per 1,000 items")
    print("| " + " | ".join(head) + " |\n|---|---:|---:|---:|---|")
    for row in rows:
        best = row.best
        capped = row.runs[0] is held
        cells = (
            row.name,
            f"{best.rate:,.0f} ({min(r.rate for r in row.runs):,.0f})",
            "-" if capped else f"{100 * best.rate / ceiling:.0f} %",
            f"{best.reads / best.items:.2f}",
            f"{row.per_1000('workers')} / {row.per_1000('verifier')}",
        )
        print("| " + " | ".join(cells) + " |")
    for line in targets(args, rows, held):
        print(line)


def targets(args: argparse.Namespace, rows: list[Row], held: Run) -> list[str]:
    ceiling, free = rows[0].best.rate, rows[1]
    share = 100 * free.best.rate / ceiling
    achieved = held.reads / held.seconds
    deviation = 100 * (achieved / args.budget_rate - 1)
    lines = [
        f"verify, no cap: {share:.0f} % of the ceiling (target >= 80 %)",
        f"rate asked {args.budget_rate:g} reads/s, held {achieved:.0f} reads/s over "
        f"{held.seconds:.1f} s ({deviation:+.1f} %; target within 10 %)",
    ]
    floor = (args.segments - 1) / args.segments * parse_duration(args.every)
    lines.append(
        f"the no-cap pass took {free.best.seconds:.2f} s, the ceiling's scans "
        f"{rows[0].best.seconds:.2f} s; with --every {args.every} and {args.segments} segments "
        f"a pass cannot end before {floor:.2f} s (its last segment is sent then; the verifier "
        "looks every 0.25 s)"
    )
    expected = 2 * args.items / args.budget_rate
    if expected < 60:
        lines.append(f"(the rate pass was due to last {expected:.0f} s: under a minute)")
    for row in rows[1:]:
        for number, run in enumerate(row.runs, 1):
            problems = wrong(run, args.items)
            if problems:
                lines.append(f"WRONG: {row.name}, run {number}: " + ", ".join(problems))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000, help="items per table")
    parser.add_argument("--segments", type=int, default=4, help="scan segments per table")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the best counts")
    parser.add_argument(
        "--budget-rate", type=float, default=600, help="--rate of the rate test (reads/s)"
    )
    parser.add_argument(
        "--every", default="0.1s", help="--every of the verifier runs (short: see above)"
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0,
        help="delay every DynamoDB call by this much (a proxy in front of dynalite)",
    )
    args = parser.parse_args()
    log_dir = ROOT / ".tmp" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    with stack(args, log_dir) as started:
        fill(started.dynalite.url, args.items)
        rows, held = measure(args, started)
    report(args, rows, held)
    return 0


if __name__ == "__main__":
    sys.exit(main())
