"""Stream-side benchmark: lag and read rates of `python -m producer` behind a 40 ms service.

    .venv/bin/python bench/producer.py [--seconds 30] [--shards 1,16,64,256] [--producers 1,2]
                                       [--rate 100] [--before-tree DIR] [--before-only]
    .venv/bin/python bench/producer.py --fleet [--poll-intervals 0.5,0.25,0.4]

Every figure comes from this run. A latency proxy (``bench/stream_service.py``) delays each call
to the stream service by 40 ms and notes every GetRecords and its shard. Behind it:

* the *fake* Kinesis of ``bench/stream_service.py`` (moto is too slow for hundreds of shards),
  writing ``--rate`` changes a second spread over the shards; 1 and 2 producers;
* moto's Kinesis with 1 and 8 shards and 50 changes a second written by this script, one
  producer: the issue's "before" set-up, for the code in ``--before-tree`` (a checkout of the
  code before shard leases, e.g. ``git archive BASE | tar -x -C /tmp/before``) and for this code.

``--fleet`` runs the fleet cases instead, each for every ``--poll-intervals`` value (the gap
before a shard at its tip is read again): 32 shards with one producer at 50 changes a second;
100 pipelines of 4 shards each (a pipelines file, 100 streams of the fake service) over two
producers at 100 changes a second in all; and that fleet again with one producer SIGKILLed in
the middle of the window ("taken over": from the kill until the last of its shards was read
again, from the proxy's notes). Memory is the producers' resident set at the window's end.

Lag is, per change (each has its own key), the time from its creation until its key's message
was in the broker's queue (this script pops the messages from Redis as they come). "visited
every" is the mean time between two reads of one shard; "max reads/s" the most GetRecords one
shard got in any one-second window. CPU is the producers' (user + system) over the window.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from tasks.coord import stats  # noqa: E402
from tasks.coord.redis_conn import text  # noqa: E402
from tests.support import servers  # noqa: E402
from tests.support.tables import client, create_table  # noqa: E402
from tests.support.workload import kinesis_record  # noqa: E402

WARMUP = 6.0  # seconds before the window: producers start, take their leases, catch up


@dataclass
class Case:
    label: str
    service: str  # "fake" or "moto"
    shards: int
    producers: int
    rate: float
    tree: Path = ROOT
    streams: int = 1  # > 1: a pipelines file of one pipeline per stream
    poll: float | None = None  # --poll-interval (None: the default)
    kill: bool = False  # SIGKILL one producer in the middle of the window
    warmup: float = WARMUP


@dataclass
class Result:
    case: Case
    lags_ms: list[float] = field(default_factory=list)
    visit_ms: float = 0.0
    reads_per_s: float = 0.0
    max_shard_reads: int = 0
    cpu: float = 0.0
    rss_mb: float = 0.0
    taken_over_s: float | None = None
    killed_shards: int = 0


class QueueWatch(threading.Thread):
    """Pops the replicate messages from the broker as they arrive: (arrival, created) per key."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.samples: list[tuple[float, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            got = self.client.brpop(["replication"], timeout=0.2)
            if got is None:
                continue
            now = time.time()
            message = json.loads(got[1])
            _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            self.samples += [(now, created) for created in kwargs.get("created", [])]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_service(case: Case, moto_url: str, log_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = servers.free_port()
    args = [sys.executable, str(ROOT / "bench" / "stream_service.py")]
    if case.service == "fake":
        args += ["fake", "--shards", str(case.shards), "--rate", str(case.rate)]
        args += ["--streams", str(case.streams)]
        args += ["--port", str(servers.free_port())]
    else:
        args += ["proxy", "--upstream", moto_url]
    args += ["--proxy-port", str(port)]
    out = (log_dir / f"service-{case.label}.log").open("wb")
    process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    servers.wait_until(lambda: servers._port_open(port), 30, "the stream service")
    return process, f"http://127.0.0.1:{port}"


def pipelines_file(case: Case, url: str, log_dir: Path) -> Path:
    path = log_dir / f"pipelines-{case.label}.toml"
    path.write_text(
        "".join(
            f'[[pipeline]]\nname = "p{i}"\nprimary = "{url}/primary-{i}"\n'
            f'replica = "{url}/replica-{i}"\nkinesis_stream = "changes-{i}"\n\n'
            for i in range(case.streams)
        )
    )
    return path


def start_producers(case: Case, url: str, env: dict[str, str], log_dir: Path) -> list[Any]:
    args = ["--primary", f"{url}/primary", "--replica", f"{url}/replica"]
    args += ["--kinesis-stream", "changes", "--name", "bench"]
    if case.streams > 1:
        args = ["--config", str(pipelines_file(case, url, log_dir))]
    if case.poll is not None:
        args += ["--poll-interval", str(case.poll)]
    started = []
    for i in range(case.producers):
        out = (log_dir / f"producer-{case.label}-{i}.log").open("wb")
        started.append(
            subprocess.Popen(
                [sys.executable, "-m", "producer", *args],
                cwd=case.tree,
                env={**env, "PYTHONPATH": str(case.tree)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        )
    return started


class MotoWriter(threading.Thread):
    """``rate`` changes a second to moto's Kinesis, each with a new key."""

    def __init__(self, moto_url: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.kinesis, self.rate = client(moto_url, "kinesis"), rate
        self.done = threading.Event()

    def run(self) -> None:
        began, written = time.monotonic(), 0
        while not self.done.is_set():
            if written < (time.monotonic() - began) * self.rate:
                key = {"id": {"S": f"k{written:09d}"}}
                self.kinesis.put_record(
                    StreamName="changes",
                    Data=kinesis_record(key, "INSERT"),
                    PartitionKey=f"k{written:09d}",
                )
                written += 1
            else:
                time.sleep(0.002)


def run_case(case: Case, moto: servers.Server, store_url: str, seconds: float, log: Path) -> Result:
    store = redis.Redis.from_url(store_url)
    store.flushall()
    writer = None
    if case.service == "moto":
        servers.reset_moto(moto.url)
        create_table(moto.url, "primary")
        create_table(moto.url, "replica")
        client(moto.url, "kinesis").create_stream(StreamName="changes", ShardCount=case.shards)
        writer = MotoWriter(moto.url, case.rate)
    service, url = start_service(case, moto.url, log)
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "CELERY_BROKER_URL": store_url,
        "CELERY_RESULT_BACKEND": store_url,
        "REPLICATOR_REDIS_URL": store_url,
    }
    watch = QueueWatch(store_url)
    watch.start()
    if writer:
        writer.start()
    producers = start_producers(case, url, env, log)
    killed: tuple[float, set[str]] | None = None
    try:
        time.sleep(case.warmup)
        began, cpu_before = time.time(), sum(cpu_seconds(p.pid) for p in producers)
        if case.kill:
            time.sleep(seconds / 2)
            killed = time.time(), held_by(store, producers[0].pid)
            producers[0].send_signal(signal.SIGKILL)
            producers[0].wait()
            producers = producers[1:]
            cpu_before = cpu_seconds(producers[0].pid)
            time.sleep(seconds / 2)
        else:
            time.sleep(seconds)
        ended, cpu_after = time.time(), sum(cpu_seconds(p.pid) for p in producers)
        rss = sum(rss_mb(p.pid) for p in producers)
        time.sleep(3)  # the window's last changes reach the queue
        reads = _reads(url)
    finally:
        for process in producers:
            process.send_signal(signal.SIGTERM)
        for process in producers:
            process.wait(60)
        watch.done.set()
        if writer:
            writer.done.set()
        service.terminate()
        service.wait(10)
    result = Result(case, cpu=(cpu_after - cpu_before) / (ended - began), rss_mb=rss)
    if killed:
        result.taken_over_s = taken_over(reads, *killed)
        result.killed_shards = len(killed[1])
    result.lags_ms = sorted(
        (arrived - created) * 1000 for arrived, created in watch.samples if began <= created < ended
    )
    _read_figures(result, reads, began, ended)
    return result


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def held_by(store: redis.Redis, pid: int) -> set[str]:
    """The shards (stream/shardId) whose lease the producer of ``pid`` holds."""
    found = set()
    for consumer, about in store.hgetall("replicator:consumers").items():
        stream = json.loads(about)["stream"]
        for shard, lease in store.hgetall(f"replicator:lease:{text(consumer)}").items():
            if f":{pid}:" in json.loads(lease)["owner"]:
                found.add(f"{stream}/{text(shard)}")
    return found


def taken_over(reads: dict[str, list[float]], at: float, shards: set[str]) -> float:
    """Seconds from ``at`` until each of ``shards`` was read again, for the last of them."""
    again = [min((t for t in reads.get(s, []) if t > at), default=float("inf")) for s in shards]
    return max(again, default=at) - at


def _reads(url: str) -> dict[str, list[float]]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/__reads", timeout=30) as response:
        loaded: dict[str, list[float]] = json.loads(response.read())
    return loaded


def _read_figures(
    result: Result, reads: dict[str, list[float]], began: float, ended: float
) -> None:
    visits, total, most = [], 0, 0
    for times in reads.values():
        inside = sorted(t for t in times if began <= t < ended)
        total += len(inside)
        visits += [b - a for a, b in itertools.pairwise(inside)]
        for i, t in enumerate(inside):
            most = max(most, bisect.bisect_left(inside, t + 1.0) - i)
    result.visit_ms = 1000 * sum(visits) / len(visits) if visits else 0.0
    result.reads_per_s = total / (ended - began)
    result.max_shard_reads = most


def fleet_cases(args: argparse.Namespace) -> list[Case]:
    found = []
    for poll in args.poll_intervals:
        found += [
            Case(f"fleet-32-{poll}", "fake", 32, 1, 50, poll=poll),
            Case(f"fleet-100x4-{poll}", "fake", 4, 2, 100, streams=100, poll=poll, warmup=40),
        ]
    poll = args.poll_intervals[-1]
    found.append(
        Case(f"fleet-kill-{poll}", "fake", 4, 2, 100, streams=100, poll=poll, kill=True, warmup=40)
    )
    return found


def cases(args: argparse.Namespace) -> list[Case]:
    if args.fleet:
        return fleet_cases(args)
    found = []
    if args.before_tree:
        for shards in (1, 8):
            found.append(Case(f"before-{shards}", "moto", shards, 1, 50, Path(args.before_tree)))
    for shards in (1, 8):
        found.append(Case(f"after-{shards}", "moto", shards, 1, 50))
    if not args.before_only:
        for shards in args.shards:
            for producers in args.producers:
                found.append(
                    Case(f"fake-{shards}-{producers}", "fake", shards, producers, args.rate)
                )
    return found


def table(results: list[Result]) -> str:
    head = (
        "| code | service | pipelines × shards | producers | poll gap | changes/s | visited every "
        "| lag p50 | lag p99 | GetRecords/s | max reads/s of a shard | producer CPU "
        "| CPU per shard | memory | per shard | taken over |"
    )
    lines = [head, "|" + "---|" * 5 + "---:|" * 11]
    for r in results:
        c = r.case
        code = "before" if c.tree != ROOT else "this"
        p50, p99 = stats.quantile(r.lags_ms, 0.5), stats.quantile(r.lags_ms, 0.99)
        shards = c.shards * c.streams
        taken = "-"
        if r.taken_over_s is not None:
            taken = f"{r.killed_shards} shards in {r.taken_over_s:.1f} s"
        poll = "default" if c.poll is None else f"{c.poll * 1000:.0f} ms"
        lines.append(
            f"| {code} | {c.service} | {c.streams} × {c.shards} | {c.producers} | {poll} "
            f"| {c.rate:.0f} | {r.visit_ms:.0f} ms | {p50:.0f} ms | {p99:.0f} ms "
            f"| {r.reads_per_s:.0f} | {r.max_shard_reads} | {r.cpu:.0%} | {r.cpu / shards:.2%} "
            f"| {r.rss_mb:.0f} MB | {r.rss_mb / shards:.2f} MB | {taken} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--shards", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64, 256]
    )
    parser.add_argument(
        "--producers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2]
    )
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--before-tree", help="the code before shard leases, to compare")
    parser.add_argument("--before-only", action="store_true", help="only the moto rows")
    parser.add_argument("--fleet", action="store_true", help="only the fleet cases")
    parser.add_argument(
        "--poll-intervals",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[0.5, 0.25],
        help="seconds, for the fleet cases",
    )
    args = parser.parse_args()
    log_dir = ROOT / ".tmp" / "bench-producer"
    log_dir.mkdir(parents=True, exist_ok=True)
    moto, store = servers.start_moto(), servers.start_redis(workdir=log_dir)
    store_url = f"redis://127.0.0.1:{store.port}/0"
    results = []
    try:
        for case in cases(args):
            results.append(run_case(case, moto, store_url, args.seconds, log_dir))
            print(table(results[-1:]).splitlines()[-1], flush=True)
    finally:
        moto.stop()
        store.stop()
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
