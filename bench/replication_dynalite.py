"""``bench/replication.py --backend dynalite``: replication where the backend is not the limit.

Both tables live on dynalite (one node process), the change stream on moto's Kinesis (records
as "Kinesis Data Streams for DynamoDB" writes them, one per key); the workers and the producer
find them through ``AWS_ENDPOINT_URL_DYNAMODB`` and ``AWS_ENDPOINT_URL_KINESIS`` (locations
``us-east-1/TABLE``). In one run it measures:

* the ceiling: a bare boto3 client doing what a replicate task does for the same keys,
  consistent BatchGetItem (100 keys) then BatchWriteItem (25 items), in 1 and in 2 processes
  (the keys split between them), clients built before the clock starts;
* the pipeline: producer + 1 worker ``-c 2``, and producer + 2 workers ``-c 1``, from the
  producer's first read until every key is applied (the workers' counters in Redis; the
  replica is counted at the end);
* the same 1-worker run with the stale-write guard off (``bench/noguard.py``, a worker app for
  this benchmark only): what the guard costs;
* the same 1-worker run through a transform's declarative steps (``TRANSFORM``: an attribute
  excluded, one renamed, a JMESPath filter every item passes, so that as many items are written):
  what the steps cost in worker CPU per key (target at most 10 %);
* memory: the worker's RSS (main process + pool) after each of ``--long-rounds`` rounds of
  ``--changes`` more records on the same stream.

Each row gives keys per second (the best of ``--repeat`` runs; the slowest in brackets), its
share of the ceiling with as many processes, and the CPU seconds per 1,000 keys of every
process involved, from /proc: the worker pool processes (for the ceiling: the bare clients),
the workers' main processes, the producer, Redis, dynalite and moto; and how busy that made
the machine (all of it over seconds x cores).
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.procs import cpu_seconds, dynalite_env, latency_proxy, rss_mib  # noqa: E402
from tasks.coord import stats  # noqa: E402
from tasks.core.iters import batched  # noqa: E402
from tasks.core.transform import load as load_transform  # noqa: E402
from tests.support import servers  # noqa: E402
from tests.support.tables import client, create_table  # noqa: E402
from tests.support.workload import kinesis_record  # noqa: E402

STREAM = "changes"
SHARDS = 2
PRIMARY, REPLICA = "primary", "replica"
COMPONENTS = ("pool", "main", "producer", "redis", "dynalite", "moto")
# Declarative steps that keep every item and its size: the work of a transform, not of writing less.
TRANSFORM = (
    "--exclude-attributes",
    "absent",
    "--rename-attribute",
    "v=value",
    "--filter",
    "v >= `0` && length(pad) > `0`",
)
DELAYED = ("BatchGetItem", "BatchWriteItem", "GetItem", "PutItem", "DeleteItem", "DescribeTable")


@dataclass
class Stack:
    """The servers of a run and the environment every process gets."""

    dynalite: servers.Server
    moto: servers.Server
    redis: servers.Server
    env: dict[str, str]
    log_dir: Path
    changes: int
    keys_per_message: int | None
    tables_url: str  # where the clients and workers send DynamoDB calls (dynalite, or the proxy)

    @property
    def store(self) -> redis.Redis:
        return redis.Redis.from_url(self.env["REPLICATOR_REDIS_URL"])

    def cpu(self, extra: dict[str, list[int]]) -> dict[str, float]:
        pids = {
            "redis": [self.redis.process.pid],
            "dynalite": [self.dynalite.process.pid],
            "moto": [self.moto.process.pid],
            **extra,
        }
        return {name: cpu_seconds(found) for name, found in pids.items()}


@dataclass
class Run:
    keys: int
    seconds: float
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return self.keys / self.seconds


@dataclass
class Row:
    name: str
    processes: int  # for the share of the ceiling with as many processes
    runs: list[Run] = field(default_factory=list)

    @property
    def best(self) -> Run:
        return max(self.runs, key=lambda r: r.rate)

    def per_1000(self, component: str) -> float | None:
        best = self.best
        if component not in best.cpu:
            return None
        return 1000 * best.cpu[component] / best.keys


# -- set-up ------------------------------------------------------------------------------------


@contextmanager
def stack(args: argparse.Namespace, log_dir: Path) -> Iterator[Stack]:
    dynalite, moto = servers.start_dynalite(), servers.start_moto()
    store = servers.start_redis(workdir=log_dir)
    proxy = latency_proxy(dynalite.url, args.latency_ms, DELAYED)  # clients and workers
    tables_url = proxy.url if proxy else dynalite.url
    url = f"redis://127.0.0.1:{store.port}/0"
    env = {**dynalite_env(url, tables_url), "AWS_ENDPOINT_URL_KINESIS": moto.url}
    if args.keys_per_message:
        env["REPLICATOR_KEYS_PER_MESSAGE"] = str(args.keys_per_message)
    os.environ.update({k: env[k] for k in ("REPLICATOR_REDIS_URL", "AWS_REGION")})
    try:
        yield Stack(
            dynalite, moto, store, env, log_dir, args.changes, args.keys_per_message, tables_url
        )
    finally:
        if proxy:
            proxy.stop()
        for server in (dynalite, moto, store):
            server.stop()


def key_of(i: int) -> dict[str, Any]:
    return {"id": {"S": f"k{i:08d}"}}


def load_primary(url: str, n: int) -> None:
    create_table(url, PRIMARY)
    ddb = client(url)
    for chunk in batched(range(n), 25):
        requests = [
            {"PutRequest": {"Item": {**key_of(i), "v": {"N": str(i)}, "pad": {"S": "x" * 100}}}}
            for i in chunk
        ]
        while requests:
            reply = ddb.batch_write_item(RequestItems={PRIMARY: requests})
            requests = reply.get("UnprocessedItems", {}).get(PRIMARY, [])


def write_stream(moto_url: str, n: int) -> None:
    """One change record per key, as Kinesis Data Streams for DynamoDB writes them."""
    kinesis = client(moto_url, "kinesis")
    for chunk in batched(range(n), 500):
        records = [
            {"Data": kinesis_record(key_of(i), "MODIFY"), "PartitionKey": f"k{i:08d}"}
            for i in chunk
        ]
        kinesis.put_records(StreamName=STREAM, Records=records)


def fresh_table(url: str, name: str) -> None:
    ddb = client(url)
    if name in ddb.list_tables()["TableNames"]:
        ddb.delete_table(TableName=name)
    create_table(url, name)


def count(url: str, name: str) -> int:
    ddb = client(url)
    total, args = 0, {"TableName": name, "Select": "COUNT"}
    while True:
        page = ddb.scan(**args)
        total += page["Count"]
        if "LastEvaluatedKey" not in page:
            return total
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# -- the ceiling: a bare boto3 client ----------------------------------------------------------


def _bare_client(url: str, replica: str, ids: list[int], go: Any, done: Any) -> None:
    """What a replicate task does for ``ids``, with a plain client: read 100, write 25s."""
    ddb = client(url)
    ddb.describe_table(TableName=PRIMARY)  # connection made before the clock starts
    go.wait()
    began = time.process_time()
    for chunk in batched(ids, 100):
        pending: Any = {PRIMARY: {"Keys": [key_of(i) for i in chunk], "ConsistentRead": True}}
        items: list[Any] = []
        while pending:
            reply = ddb.batch_get_item(RequestItems=pending)
            items += reply["Responses"].get(PRIMARY, [])
            pending = reply.get("UnprocessedKeys") or None
        for part in batched(items, 25):
            requests: Any = [{"PutRequest": {"Item": item}} for item in part]
            while requests:
                written = ddb.batch_write_item(RequestItems={replica: requests})
                requests = written.get("UnprocessedItems", {}).get(replica, [])
    done.put(time.process_time() - began)


def ceiling_run(run: Stack, processes: int, tag: str) -> Run:
    replica = f"{tag}-replica"
    fresh_table(run.dynalite.url, replica)
    context = multiprocessing.get_context("fork")
    go, done = context.Event(), context.Queue()
    shares = [list(range(run.changes))[p::processes] for p in range(processes)]
    workers = [
        context.Process(target=_bare_client, args=(run.tables_url, replica, share, go, done))
        for share in shares
    ]
    for worker in workers:
        worker.start()
    time.sleep(1.0)  # every client is built and waiting
    before = run.cpu({})
    began = time.monotonic()
    go.set()
    used = sum(done.get(timeout=600) for _ in workers)
    seconds = time.monotonic() - began
    after = run.cpu({})
    for worker in workers:
        worker.join(30)
    assert count(run.dynalite.url, replica) == run.changes, "the ceiling missed keys"
    client(run.dynalite.url).delete_table(TableName=replica)
    cpu = {name: after[name] - before[name] for name in after}
    return Run(run.changes, seconds, {**cpu, "pool": used})


# -- the pipeline: producer and workers ----------------------------------------------------------


def applied(store: redis.Redis, replica: str) -> int:
    counts = stats.read(store, replica)
    return int(counts.get("puts", 0) + counts.get("deletes", 0))


@dataclass
class Pipeline:
    """A producer and workers replicating the stream into a fresh replica table."""

    run: Stack
    tag: str
    workers: list[servers.Worker]
    producer: servers.Command
    replica: str

    def pids(self) -> dict[str, list[int]]:
        return {
            "pool": [p for w in self.workers for p in w.pool_pids()],
            "main": [w.process.pid for w in self.workers],
            "producer": [self.producer.process.pid],
        }

    def rss(self) -> float:
        return sum(rss_mib(p) for pids in (self.pids()["main"], self.pids()["pool"]) for p in pids)

    def stop(self) -> None:
        self.producer.terminate()
        for worker in self.workers:
            worker.stop()


def start_pipeline(
    run: Stack,
    tag: str,
    workers: int,
    concurrency: int,
    app: str,
    extra: dict[str, str],
    producer_args: tuple[str, ...] = (),
) -> Pipeline:
    """Workers (ready for the tables, when the code warms pool processes up) and a producer
    reading the stream from its start (a checkpoint name of its own), into an empty replica
    (the same table name every run, its counters reset)."""
    fresh_table(run.dynalite.url, REPLICA)
    spec = f"us-east-1/{REPLICA}"
    stats.reset(run.store, spec)
    started = [
        servers.start_worker(
            {**run.env, **extra}, concurrency, log_dir=run.log_dir, name=f"{tag}-{i}", app=app
        )
        for i in range(workers)
    ]
    if (ROOT / "tasks" / "replication" / "warmup.py").exists():
        for worker in started:
            servers.wait_until(
                lambda w=worker: w.output().count("worker process ready") >= concurrency,
                60,
                "pool processes ready",
            )
    command = [sys.executable, "-m", "producer", "--primary", f"us-east-1/{PRIMARY}"]
    command += ["--replica", spec, "--kinesis-stream", STREAM, "--name", tag, *producer_args]
    producer = servers.start_command(command, run.env, run.log_dir, tag)
    return Pipeline(run, tag, started, producer, spec)


def pipeline_run(
    run: Stack,
    tag: str,
    workers: int,
    concurrency: int,
    app: str,
    extra: dict[str, str] | None = None,
    producer_args: tuple[str, ...] = (),
) -> Run:
    pipeline = start_pipeline(run, tag, workers, concurrency, app, extra or {}, producer_args)
    store = run.store
    try:
        # The clock starts when the producer begins reading (its start-up is not replication).
        servers.wait_until(
            lambda: "shard discovered" in pipeline.producer.output(), 60, "producer", 0.005
        )
        before, began = run.cpu(pipeline.pids()), time.monotonic()
        servers.wait_until(
            lambda: applied(store, pipeline.replica) >= run.changes, 600, "replication", 0.02
        )
        seconds, after = time.monotonic() - began, run.cpu(pipeline.pids())
    finally:
        pipeline.stop()
    found = count(run.dynalite.url, REPLICA)
    assert found == run.changes, f"{found} of {run.changes} keys in the replica"
    return Run(run.changes, seconds, {name: after[name] - before[name] for name in after})


def long_run(run: Stack, rounds: int) -> list[tuple[int, float]]:
    """(keys applied, worker RSS in MiB) after each round of ``changes`` more records."""
    pipeline = start_pipeline(run, "long", 1, 2, "worker", {})
    store, samples = run.store, []
    try:
        for done in range(1, rounds + 1):
            if done > 1:
                write_stream(run.moto.url, run.changes)
            target = done * run.changes
            servers.wait_until(
                lambda target=target: applied(store, pipeline.replica) >= target, 600, "round"
            )
            samples.append((applied(store, pipeline.replica), pipeline.rss()))
    finally:
        pipeline.stop()
    return samples


# -- the report ----------------------------------------------------------------------------------


_tags = itertools.count()


def repeated(row: Row, times: int, once: Callable[[str], Run]) -> Row:
    """``times`` runs of a row, each with its own tag (replica table, checkpoint name)."""
    for _ in range(times):
        row.runs.append(once(f"run{next(_tags)}"))
        print(f"  {row.name}: {row.runs[-1].rate:,.0f} keys/s", file=sys.stderr, flush=True)
    return row


def rows_for(run: Stack, parts: set[str], times: int) -> list[Row]:
    rows = []
    if "ceiling" in parts:
        for n in (1, 2):
            plural = "es" if n > 1 else ""
            row = Row(f"bare client, {n} process{plural}", n)
            rows.append(repeated(row, times, lambda tag, n=n: ceiling_run(run, n, tag)))
    if "workers" in parts:
        one = Row("1 worker -c 2", 1)
        rows.append(repeated(one, times, lambda tag: pipeline_run(run, tag, 1, 2, "worker")))
        two = Row("2 workers -c 1", 2)
        rows.append(repeated(two, times, lambda tag: pipeline_run(run, tag, 2, 1, "worker")))
    if "in-flight" in parts:
        one_at_a_time = {"REPLICATOR_REQUESTS_IN_FLIGHT": "1"}
        row = Row("1 worker -c 2, one request in flight", 1)
        rows.append(
            repeated(row, times, lambda tag: pipeline_run(run, tag, 1, 2, "worker", one_at_a_time))
        )
    if "guard" in parts:
        off = Row("1 worker -c 2, guard off (bench only)", 1)
        rows.append(repeated(off, times, lambda tag: pipeline_run(run, tag, 1, 2, "bench.noguard")))
    if "transform" in parts:
        shaped = Row("1 worker -c 2, transform (exclude, rename, filter)", 1)
        rows.append(
            repeated(
                shaped,
                times,
                lambda tag: pipeline_run(run, tag, 1, 2, "worker", producer_args=TRANSFORM),
            )
        )
    return rows


def report(args: argparse.Namespace, rows: list[Row], memory: list[tuple[int, float]]) -> None:
    cores = os.cpu_count() or 1
    ceilings = {r.processes: r.best.rate for r in rows if r.name.startswith("bare client")}
    print(
        f"\nkeys: {args.changes}, keys per message: {args.keys_per_message or 'default'}, "
        f"DynamoDB latency: {args.latency_ms:g} ms, "
        f"cores: {cores}, best of {args.repeat}, load average {os.getloadavg()[0]:.1f}"
    )
    print("CPU s per 1,000 keys: " + " / ".join(COMPONENTS) + " (pool: the bare clients)")
    head = ("run", "keys/s (slowest)", "of ceiling", "CPU s per 1,000 keys", "busy")
    print("| " + " | ".join(head) + " |\n|---|---:|---:|---|---:|")
    for row in rows:
        best = row.best
        share = ceilings.get(row.processes)
        cells = (
            row.name,
            f"{best.rate:,.0f} ({min(r.rate for r in row.runs):,.0f})",
            f"{100 * best.rate / share:.0f} %" if share else "-",
            " / ".join(_figure(row.per_1000(c)) for c in COMPONENTS),
            f"{100 * sum(best.cpu.values()) / (best.seconds * cores):.0f} %",
        )
        print("| " + " | ".join(cells) + " |")
    for line in targets(rows, ceilings):
        print(line)
    if memory:
        rounds = ", ".join(f"{keys:,} keys {mib:.1f} MiB" for keys, mib in memory)
        print(f"worker RSS (main + pool) after each round: {rounds}")
        first, last = memory[0][1], memory[-1][1]
        print(f"from the first round to the last: {100 * (last / first - 1):+.1f} %")


def steps_cpu(items: int = 20_000, rounds: int = 5) -> float:
    """CPU seconds per key of ``TRANSFORM``'s steps on the benchmark's items (as a worker
    applies them: loaded once, then called per item)."""
    from cli.transform_options import spec_from_flags

    flags = dict(zip(TRANSFORM[::2], TRANSFORM[1::2], strict=True))
    params: dict[str, Any] = {
        "exclude_attributes": flags["--exclude-attributes"],
        "rename_attributes": (flags["--rename-attribute"],),
        "filter_expression": flags["--filter"],
    }
    shape = load_transform(spec_from_flags(params), ("id",))
    batch = [{**key_of(i), "v": {"N": str(i)}, "pad": {"S": "x" * 100}} for i in range(items)]
    began = time.process_time()
    for _ in range(rounds):
        kept, gone = shape.items(batch)
        assert len(kept) == items and not gone
    return (time.process_time() - began) / (items * rounds)


def least_worker_cpu(row: Row) -> float:
    """The workers' CPU seconds per key (pool and main processes), the least of the row's runs:
    the run least disturbed by whatever else the machine did."""
    return min((r.cpu["pool"] + r.cpu["main"]) / r.keys for r in row.runs)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def targets(rows: list[Row], ceilings: dict[int, float]) -> list[str]:
    by_name = {r.name: r for r in rows}
    one, two = by_name.get("1 worker -c 2"), by_name.get("2 workers -c 1")
    bare = by_name.get("bare client, 1 process")
    off = next((r for r in rows if "guard off" in r.name), None)
    shaped = next((r for r in rows if "transform" in r.name), None)
    lines = []
    if one and 1 in ceilings:
        share = 100 * one.best.rate / ceilings[1]
        lines.append(f"1 worker -c 2: {share:.0f} % of the 1-process ceiling (target >= 80 %)")
    if two and 2 in ceilings:
        share = 100 * two.best.rate / ceilings[2]
        lines.append(f"2 workers -c 1: {share:.0f} % of the 2-process ceiling (target >= 70 %)")
    if one and bare:
        ratio = (one.per_1000("pool") or 0) / (bare.per_1000("pool") or 1)
        lines.append(f"worker-pool CPU per key: {ratio:.2f}x the bare client's (target <= 1.3x)")
    if one and off:
        slower = 100 * (1 - one.best.rate / off.best.rate)
        extra = (one.per_1000("pool") or 0) - (off.per_1000("pool") or 0)
        lines.append(
            f"the guard: {slower:.0f} % fewer keys/s, {extra:+.3f} pool CPU s per 1,000 keys"
        )
    if one and shaped:
        plain_cpu, shaped_cpu = least_worker_cpu(one), least_worker_cpu(shaped)
        lines.append(
            f"the transform: worker CPU (pool + main) {1000 * shaped_cpu:.3f} s per 1,000 keys "
            f"against {1000 * plain_cpu:.3f} without, {100 * (shaped_cpu / plain_cpu - 1):+.1f} % "
            "(least of the runs each; run-to-run noise is of the same size)"
        )
        steps = steps_cpu()
        lines.append(
            f"the declarative steps alone, timed in this process over the same items: "
            f"{1000 * steps:.4f} CPU s per 1,000 keys, {100 * steps / plain_cpu:.1f} % of the "
            "worker's CPU per key without them (target <= 10 %)"
        )
    return lines


def run(args: argparse.Namespace, log_dir: Path) -> int:
    args.changes = args.changes or 20_000
    parts = set(args.rows.split(","))
    with stack(args, log_dir) as started:
        load_primary(started.dynalite.url, args.changes)
        client(started.moto.url, "kinesis").create_stream(StreamName=STREAM, ShardCount=SHARDS)
        write_stream(started.moto.url, args.changes)
        rows = rows_for(started, parts, args.repeat)
        memory = long_run(started, args.long_rounds) if "long" in parts else []
    report(args, rows, memory)
    return 0
