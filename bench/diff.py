"""Benchmark diff-tables on dynalite: keys compared per second, item reads per key, memory.

    .venv/bin/python bench/diff.py [--items 20000] [--differences 120] [--segments 8] [--repeat 3]

Starts its own dynalite (node_modules/.bin/dynalite; `npm install` first) and Redis on free
ports, fills a primary and a replica with ``--items`` items each, plants ``--differences``
discrepancies (a third missing, a third different, a third extraneous), then measures in the
same run:

* the backend ceiling: both tables scanned at once, ``--segments`` parallel segments each, with
  nothing else done (keys per second = items / seconds), with a plain boto3 client (botocore
  parses every page: the ceiling the targets refer to) and again with the diff's own scan code
  (``tasks.aws.dynamo.scan_pages``, pages parsed by ``tasks.aws.fast_scan``), both from one
  process with one thread per segment;
* `diff-tables --segments N` fanned out to 1 and to 2 worker processes, and without segment
  options (threads in the command): keys compared per second, item reads per key compared
  (scan reads + consistent point reads, as counted by the segments), peak RSS of the worker
  pool processes, and whether exactly the planted discrepancies were found.

Each row also gives the CPU seconds per 1,000 keys of each process involved, from /proc and
getrusage: dynalite (one node process), the worker's pool processes (summed) and its main
process, and the command while timed (for the ceilings: the benchmark's own scanning threads);
and how busy that made the machine (all of it over seconds x cores), to tell a CPU-bound run from
one that waits.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procs import cpu_seconds  # noqa: E402
from tests.support import servers  # noqa: E402
from tests.support.tables import client, create_table  # noqa: E402


def put_all(url: str, table: str, items: list[dict[str, Any]]) -> None:
    ddb = client(url)

    def write(chunk: list[dict[str, Any]]) -> None:
        pending = [{"PutRequest": {"Item": i}} for i in chunk]
        while pending:
            reply = ddb.batch_write_item(RequestItems={table: pending})
            pending = reply.get("UnprocessedItems", {}).get(table, [])

    chunks = [items[i : i + 25] for i in range(0, len(items), 25)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, chunks))


def item(i: int, value: str = "v") -> dict[str, Any]:
    return {
        "id": {"S": f"key-{i:07d}"},
        "n": {"N": str(i)},
        "s": {"S": value * 40},
        "tags": {"SS": ["a", "b", f"t{i % 7}"]},
    }


def fill(url: str, items: int, differences: int) -> dict[str, int]:
    """Keys below a third are missing from the replica, the next third differ, and the rest of
    the differences are extra keys in the replica."""
    for name in ("primary", "replica"):
        create_table(url, name)
    third = differences // 3
    put_all(url, "primary", [item(i) for i in range(items)])
    replica = [item(i, "w" if i < 2 * third else "v") for i in range(third, items)]
    replica += [item(items + i) for i in range(differences - 2 * third)]
    put_all(url, "replica", replica)
    return {"missing": third, "different": third, "extraneous": differences - 2 * third}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Watched:
    """The processes whose CPU a run is charged with, besides the command itself."""

    dynalite: int
    pool: list[int] = field(default_factory=list)
    main: list[int] = field(default_factory=list)

    def sample(self) -> dict[str, float]:
        found = {"dynalite": cpu_seconds([self.dynalite])}
        if self.pool:
            found.update(pool=cpu_seconds(self.pool), main=cpu_seconds(self.main))
        return found


def cpu_used(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in after}


PLAIN = "two plain parallel scans (the ceiling)"
PROJECT = "two parallel scans, the diff's scan code"
Scanner = Callable[[str, int, int], int]  # (table, segment, segments) -> items read


def plain_scan(url: str) -> Scanner:
    """A segment read with a plain boto3 client (botocore parses every page)."""
    ddb = client(url)

    def scan(table: str, segment: int, segments: int) -> int:
        count, args = 0, {"TableName": table, "Segment": segment, "TotalSegments": segments}
        while True:
            page = ddb.scan(**args)
            count += len(page["Items"])
            if "LastEvaluatedKey" not in page:
                return count
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    return scan


def project_scan(url: str) -> Scanner:
    """A segment read as a diff reads it: ``tasks.aws.dynamo.scan_pages``, in a process with
    the garbage-collector settings of the diff's processes (this one, from now on: the plain
    ceiling is measured first)."""
    from tasks.aws import dynamo
    from tasks.core import collector
    from tasks.core.config import settings

    collector.tune()

    def scan(table: str, segment: int, segments: int) -> int:
        pages = dynamo.scan_pages(settings().table(f"{url}/{table}"), segment, segments)
        return sum(len(items) for items, _ in pages)

    return scan


def ceiling(scan: Scanner, segments: int, watched: Watched) -> dict[str, Any]:
    """Both tables scanned at once, ``segments`` segments each: a summary like a diff's."""
    jobs = [(t, s, segments) for t in ("primary", "replica") for s in range(segments)]
    before = {**watched.sample(), "command": time.process_time()}
    started = time.monotonic()
    with ThreadPoolExecutor(len(jobs)) as pool:
        total = sum(pool.map(lambda job: scan(*job), jobs))
    seconds = time.monotonic() - started
    cpu = cpu_used(before, {**watched.sample(), "command": time.process_time()})
    return {"scanned": total, "seconds": seconds, "cpu": cpu}


def peak_rss_kib(pids: list[int]) -> int:
    peaks = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        peaks += [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")]
    return max(peaks, default=0)


def run_diff(url: str, env: dict[str, str], watched: Watched, *args: str) -> dict[str, Any]:
    """One diff-tables run: its JSON summary, with ``cpu`` (seconds per process) added.

    The command's own CPU is counted over the time its summary reports (``seconds``), like its
    keys/s: its start-up (imports, clients, the schema check) and its exit are left out. It is
    sampled every 10 ms; the window ends when the summary line appears."""
    before = watched.sample()
    command = [str(ROOT / ".venv" / "bin" / "diff-tables"), f"{url}/primary", f"{url}/replica"]
    with tempfile.TemporaryDirectory() as folder:
        out, err = Path(folder, "out"), Path(folder, "err")
        with out.open("w") as stdout, err.open("w") as stderr:
            process = subprocess.Popen(
                [*command, *args], env=env, stdout=stdout, stderr=stderr, text=True
            )
            samples = watch_cpu(process, out)
        if process.returncode not in (0, 1):
            sys.exit(f"diff-tables failed ({process.returncode}):\n{err.read_text()[-3000:]}")
        summary: dict[str, Any] = json.loads(out.read_text().splitlines()[-1])
    ended, at_end = samples[-1]
    at_start = max((cpu for t, cpu in samples if t <= ended - summary["seconds"]), default=0.0)
    summary["cpu"] = {**cpu_used(before, watched.sample()), "command": at_end - at_start}
    return summary


def watch_cpu(process: subprocess.Popen[str], out: Path) -> list[tuple[float, float]]:
    """(time, CPU seconds used so far) of a running command, until its JSON summary appears
    on its output (the last line; the process is then waited for)."""
    samples: list[tuple[float, float]] = []
    while process.poll() is None:
        samples.append((time.monotonic(), cpu_seconds([process.pid])))
        text = out.read_text()
        if text.endswith("}\n") and text.splitlines()[-1].startswith("{"):  # records: "[kind]"
            break
        time.sleep(0.01)
    process.wait(1800)
    return samples


@dataclass
class Row:
    name: str
    keys_per_second: float
    reads_per_key: float
    exact: str = "-"
    peak_rss_kib: int = 0
    seconds: float = 0.0
    slowest: float = 0.0
    cpu: Mapping[str, float] = field(default_factory=dict)  # CPU seconds per process

    def cpu_per_1000(self, name: str) -> str:
        if name not in self.cpu:
            return "-"
        return f"{1000 * self.cpu[name] / (self.keys_per_second * self.seconds):.3f}"

    def busy(self) -> str:
        """Share of the machine's CPU the processes used during the run."""
        cores = os.cpu_count() or 1
        return f"{100 * sum(self.cpu.values()) / (self.seconds * cores):.0f}%"


def measured(name: str, summary: dict[str, Any], planted: dict[str, int], memory: int = 0) -> Row:
    exact = all(summary[k] == v for k, v in planted.items())
    return Row(
        name,
        summary["compared"] / summary["seconds"],
        summary["reads_per_key"],
        "yes" if exact else "NO",
        memory,
        summary["seconds"],
        slowest=summary["slowest"],
        cpu=summary["cpu"],
    )


def best_diff(
    url: str, env: dict[str, str], watched: Watched, repeat: int, *args: str
) -> dict[str, Any]:
    """The fastest of ``repeat`` runs (the machine may be shared: noise only slows runs down);
    ``spread`` is the slowest run's keys/s."""
    runs = [run_diff(url, env, watched, *args, "--progress-interval", "600") for _ in range(repeat)]
    rates = [s["compared"] / s["seconds"] for s in runs]
    best = runs[rates.index(max(rates))]
    return {**best, "slowest": min(rates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--differences", type=int, default=120)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the best counts")
    options = parser.parse_args()

    dynalite, redis = servers.start_dynalite(), servers.start_redis()
    redis_url = f"redis://127.0.0.1:{redis.port}/0"
    env = servers.process_env(redis_url)
    try:
        planted = fill(dynalite.url, options.items, options.differences)
        rows = [
            ceiling_row(PLAIN, plain_scan(dynalite.url), dynalite, options),
            ceiling_row(PROJECT, project_scan(dynalite.url), dynalite, options),
        ]
        for processes in (1, 2):
            rows.append(worker_row(dynalite, env, options, planted, processes))
        watched = Watched(dynalite.process.pid)
        summary = best_diff(dynalite.url, env, watched, options.repeat)
        rows.append(measured("diff-tables, no segment options (threads)", summary, planted))
        report(options, rows)
    finally:
        dynalite.stop()
        redis.stop()


def ceiling_row(
    name: str, scan: Scanner, dynalite: servers.Server, options: argparse.Namespace
) -> Row:
    watched = Watched(dynalite.process.pid)
    runs = [ceiling(scan, options.segments, watched) for _ in range(options.repeat)]
    best = min(runs, key=lambda r: r["seconds"])
    return Row(
        name,
        options.items / best["seconds"],
        best["scanned"] / options.items,
        seconds=best["seconds"],
        cpu=best["cpu"],
        slowest=options.items / max(r["seconds"] for r in runs),
    )


def worker_row(
    dynalite: servers.Server,
    env: dict[str, str],
    options: argparse.Namespace,
    planted: dict[str, int],
    processes: int,
) -> Row:
    """``diff-tables --segments N`` on a worker with ``processes`` pool processes."""
    worker = servers.start_worker(env, processes, "bulk", name=f"bench{processes}")
    try:
        watched = Watched(dynalite.process.pid, worker.pool_pids(), [worker.process.pid])
        summary = best_diff(
            dynalite.url, env, watched, options.repeat, "--segments", str(options.segments)
        )
        memory = peak_rss_kib(worker.pool_pids())
    finally:
        worker.stop()
    plural = "es" if processes > 1 else ""
    name = f"diff-tables --segments {options.segments}, {processes} worker process{plural}"
    return measured(name, summary, planted, memory)


def report(options: argparse.Namespace, rows: list[Row]) -> None:
    plain, own = rows[0].keys_per_second, rows[1].keys_per_second
    print(
        f"items per table: {options.items}, planted differences: {options.differences}, "
        f"segments: {options.segments}, cores: {os.cpu_count()}, best of {options.repeat}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        "CPU s per 1,000 keys: dynalite / worker pool (all pool processes) / worker main / "
        "command; busy: all of it over seconds x cores"
    )
    print(
        f"| {'run':<46} | {'keys/s':>7} | {'slowest':>7} | {'of ceiling':>10} "
        f"| {'of diff scans':>13} | {'reads/key':>9} | {'exact':>5} | {'CPU s/1k keys':>27} "
        f"| {'busy':>4} | {'peak worker RSS':>15} |"
    )
    widths = (48, 9, 9, 12, 15, 11, 7, 29, 6, 17)
    print("|" + "|".join("-" * w for w in widths) + "|")
    for row in rows:
        memory = f"{row.peak_rss_kib / 1024:.0f} MiB" if row.peak_rss_kib else "-"
        cpu = " / ".join(row.cpu_per_1000(n) for n in ("dynalite", "pool", "main", "command"))
        print(
            f"| {row.name:<46} | {row.keys_per_second:>7.0f} | {row.slowest:>7.0f} "
            f"| {100 * row.keys_per_second / plain:>9.0f}% "
            f"| {100 * row.keys_per_second / own:>12.0f}% | {row.reads_per_key:>9.2f} "
            f"| {row.exact:>5} | {cpu:>27} | {row.busy():>4} | {memory:>15} |"
        )


if __name__ == "__main__":
    main()
