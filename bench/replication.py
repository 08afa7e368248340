"""Replication benchmark: throughput, lag, worker CPU and memory per broker, against the
backend's own ceiling.

    .venv/bin/python bench/replication.py [--broker redis|amqp]... [--changes 8000]
        [--steady-seconds 15] [--long-factor 10]
    .venv/bin/python bench/replication.py --backend dynalite [--changes 20000] [--repeat 3]

``--backend dynalite`` (tables on dynalite, the stream on moto's Kinesis) is described in
bench/replication_dynalite.py. The default, moto, prints one table, a column per broker (both by
default, side by side). Every figure comes from
this run:

* ceiling: one client reads the stream and does the BatchGetItem (consistent) + BatchWriteItem
  for the same keys in a tight loop: the most the endpoint can do for this work;
* throughput: producer + N worker processes replicating the same number of changes, measured
  from the producer's first read until the workers have applied every key;
* CPU per key: user + system CPU seconds of the worker processes (main and pool) during the
  throughput run, divided by the keys replicated;
* lag: the workers' own samples (change creation -> replica write) at a steady 100 writes/s;
* memory: the worker processes' RSS after a steady run and after one `--long-factor` times longer.

Brokers: ``redis`` (the run's own Redis, which holds the coordination state for both) and
``amqp`` (a vhost of the run's own on the machine's RabbitMQ, 127.0.0.1:5672).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from tasks.coord import stats  # noqa: E402
from tasks.core.iters import batched  # noqa: E402
from tests.support import rabbitmq, servers  # noqa: E402
from tests.support.tables import client, create_table  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_rss(worker: servers.Worker) -> float:
    return sum(rss_mb(p) for p in [worker.process.pid, *worker.pool_pids()])


def worker_cpu(workers: list[servers.Worker]) -> float:
    """User + system CPU seconds the workers' processes (main and pool) have used so far."""
    ticks = 0
    for pid in (p for w in workers for p in [w.process.pid, *w.pool_pids()]):
        with contextlib.suppress(FileNotFoundError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def broker_env(broker: str, env: dict[str, str]) -> Iterator[dict[str, str]]:
    """``env`` pointing every process at ``broker``: the run's Redis, or a RabbitMQ vhost."""
    if broker == "redis":
        yield env
        return
    reason = rabbitmq.unavailable()
    if reason:
        raise SystemExit(f"--broker amqp: {reason}")
    with rabbitmq.vhost() as url:
        yield {**env, "CELERY_BROKER_URL": url}


def load(moto_url: str, table: str, n: int, start: int = 0) -> None:
    ddb = client(moto_url)
    for base in range(start, start + n, 25):
        requests = [
            {
                "PutRequest": {
                    "Item": {"id": {"S": f"k{i:08d}"}, "v": {"N": str(i)}, "pad": {"S": "x" * 100}}
                }
            }
            for i in range(base, min(start + n, base + 25))
        ]
        ddb.batch_write_item(RequestItems={table: requests})


def ceiling(moto_url: str, n: int) -> float:
    """One client: stream -> BatchGetItem(consistent) -> BatchWriteItem, as fast as it goes."""
    create_table(moto_url, "ceil-primary", stream="KEYS_ONLY")
    create_table(moto_url, "ceil-replica")
    load(moto_url, "ceil-primary", n)
    ddb, streams = client(moto_url), client(moto_url, "dynamodbstreams")
    arn = ddb.describe_table(TableName="ceil-primary")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    began = time.monotonic()
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    done = 0
    while done < n:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        iterator = page["NextShardIterator"]
        keys = [r["dynamodb"]["Keys"] for r in page["Records"]]
        for chunk in batched(keys, 100):
            got = ddb.batch_get_item(
                RequestItems={"ceil-primary": {"Keys": chunk, "ConsistentRead": True}}
            )["Responses"]["ceil-primary"]
            for part in batched(got, 25):
                ddb.batch_write_item(
                    RequestItems={"ceil-replica": [{"PutRequest": {"Item": i}} for i in part]}
                )
        done += len(keys)
    return n / (time.monotonic() - began)


def applied(store: redis.Redis, replica: str) -> int:
    counts = stats.read(store, replica)
    return int(counts.get("puts", 0) + counts.get("deletes", 0))


def pipeline(
    moto_url: str, env: dict[str, str], tag: str, workers: int, log_dir: Path
) -> tuple[str, str, list[servers.Worker], Any]:
    create_table(moto_url, f"{tag}-primary", stream="KEYS_ONLY")
    create_table(moto_url, f"{tag}-replica")
    primary, replica = f"{moto_url}/{tag}-primary", f"{moto_url}/{tag}-replica"
    started = [servers.start_worker(env, concurrency=workers, log_dir=log_dir, name=tag)]
    return primary, replica, started, None


def throughput(
    moto_url: str,
    env: dict[str, str],
    store: redis.Redis,
    workers: int,
    n: int,
    log_dir: Path,
    broker: str = "redis",
) -> tuple[float, float]:
    """Changes per second, and worker CPU seconds per key."""
    tag = f"tp{workers}-{broker}"
    primary, replica, started, _ = pipeline(moto_url, env, tag, workers, log_dir)
    load(moto_url, f"{tag}-primary", n)
    producer = servers.start_command(
        [sys.executable, "-m", "producer", "--primary", primary, "--replica", replica],
        env,
        log_dir,
        tag,
    )
    try:
        # The clock starts when the producer begins reading (its start-up is not replication).
        servers.wait_until(lambda: "shard discovered" in producer.output(), 60, "producer", 0.005)
        began, cpu = time.monotonic(), worker_cpu(started)
        servers.wait_until(lambda: applied(store, replica) >= n, 600, "replication", 0.02)
        return n / (time.monotonic() - began), (worker_cpu(started) - cpu) / n
    finally:
        producer.terminate()
        for worker in started:
            worker.stop()


def steady(
    moto_url: str,
    env: dict[str, str],
    store: redis.Redis,
    seconds: float,
    factor: int,
    log_dir: Path,
    broker: str = "redis",
) -> dict[str, float]:
    tag = f"steady-{broker}"
    primary, replica, started, _ = pipeline(moto_url, env, tag, 2, log_dir)
    producer = servers.start_command(
        [sys.executable, "-m", "producer", "--primary", primary, "--replica", replica],
        env,
        log_dir,
        tag,
    )
    result: dict[str, float] = {}
    try:
        servers.wait_until(lambda: "producer status" in producer.output(), 60, "the producer")
        written = _write_at(moto_url, f"{tag}-primary", 100, seconds, 0)
        servers.wait_until(lambda: applied(store, replica) >= written, 120, "catch-up", 0.1)
        lags = sorted(stats.lag_samples(store, replica))
        result["lag_p50"] = stats.quantile(lags, 0.5)
        result["lag_p99"] = stats.quantile(lags, 0.99)
        result["rss_short"] = worker_rss(started[0])
        more = _write_at(moto_url, f"{tag}-primary", 100, seconds * factor, written)
        servers.wait_until(lambda: applied(store, replica) >= written + more, 300, "catch-up", 0.1)
        result["rss_long"] = worker_rss(started[0])
        result["rate"] = (written + more) / (seconds * (factor + 1))
        return result
    finally:
        producer.terminate()
        for worker in started:
            worker.stop()


def _write_at(moto_url: str, table: str, rate: float, seconds: float, start: int) -> int:
    ddb = client(moto_url)
    began, i = time.monotonic(), 0
    while (elapsed := time.monotonic() - began) < seconds:
        if i < elapsed * rate:
            ddb.put_item(
                TableName=table, Item={"id": {"S": f"s{start + i:08d}"}, "v": {"N": str(i)}}
            )
            i += 1
        else:
            time.sleep(0.002)
    return i


def measure(
    broker: str, moto_url: str, env: dict[str, str], store: redis.Redis, args: Any, log_dir: Path
) -> dict[str, float]:
    """Every figure of one broker's column."""
    with broker_env(broker, env) as own:
        one, cpu_one = throughput(moto_url, own, store, 1, args.changes, log_dir, broker)
        two, cpu_two = throughput(moto_url, own, store, 2, args.changes, log_dir, broker)
        calm = steady(moto_url, own, store, args.steady_seconds, args.long_factor, log_dir, broker)
    return {"one": one, "two": two, "cpu_one": cpu_one, "cpu_two": cpu_two, **calm}


def table(top: float, results: dict[str, dict[str, float]], args: Any) -> list[tuple[str, ...]]:
    """Rows: a measure, then its value for each broker (with its share of the ceiling)."""
    long_run = args.steady_seconds * (args.long_factor + 1)

    def row(name: str, show: Any) -> tuple[str, ...]:
        return (name, *(show(r) for r in results.values()))

    return [
        (
            "moto ceiling (stream + BatchGet + BatchWrite, 1 client)",
            *[f"{top:.0f}/s"] * len(results),
        ),
        row(
            "replication, 1 worker process (changes/s)",
            lambda r: f"{r['one']:.0f} ({r['one'] / top:.0%})",
        ),
        row(
            "replication, 2 worker processes (changes/s)",
            lambda r: f"{r['two']:.0f} ({r['two'] / top:.0%})",
        ),
        row("worker CPU per key, 1 process (ms)", lambda r: f"{r['cpu_one'] * 1000:.2f}"),
        row("worker CPU per key, 2 processes (ms)", lambda r: f"{r['cpu_two'] * 1000:.2f}"),
        row("lag p50 at 100 writes/s (ms; target <= 300)", lambda r: f"{r['lag_p50']:.0f}"),
        row("lag p99 at 100 writes/s (ms; target <= 1000)", lambda r: f"{r['lag_p99']:.0f}"),
        row(
            f"worker RSS after {args.steady_seconds:.0f} s (MB)", lambda r: f"{r['rss_short']:.1f}"
        ),
        row(
            f"worker RSS after {long_run:.0f} s (MB)",
            lambda r: f"{r['rss_long']:.1f} ({r['rss_long'] / r['rss_short'] - 1:+.1%})",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("moto", "dynalite"), default="moto")
    parser.add_argument(
        "--broker",
        action="append",
        choices=("redis", "amqp"),
        help="moto: broker to measure (repeat for several; default: both, side by side)",
    )
    parser.add_argument("--changes", type=int, default=None, help="8000 (moto), 20000 (dynalite)")
    parser.add_argument("--steady-seconds", type=float, default=15, help="moto only")
    parser.add_argument("--long-factor", type=int, default=10, help="moto only")
    dynalite_options(parser)
    args = parser.parse_args()
    log_dir = ROOT / ".tmp" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    if args.backend == "dynalite":
        from bench.replication_dynalite import run

        return run(args, log_dir)
    args.changes = args.changes or 8000
    brokers = list(dict.fromkeys(args.broker or ["redis", "amqp"]))
    if not args.broker and rabbitmq.unavailable():
        print(f"RabbitMQ left out: {rabbitmq.unavailable()}", file=sys.stderr)
        brokers.remove("amqp")
    return run_moto(args, log_dir, brokers)


def run_moto(args: argparse.Namespace, log_dir: Path, brokers: list[str]) -> int:
    moto, store_server = servers.start_moto(), servers.start_redis(workdir=log_dir)
    url = f"redis://127.0.0.1:{store_server.port}/0"
    env = servers.process_env(url)
    os.environ.update({k: env[k] for k in ("REPLICATOR_REDIS_URL", "AWS_REGION")})
    store = redis.Redis.from_url(url)
    try:
        top = ceiling(moto.url, args.changes)
        results = {b: measure(b, moto.url, env, store, args, log_dir) for b in brokers}
    finally:
        moto.stop()
        store_server.stop()
    rows = table(top, results, args)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}" + "".join(f"  {b:>14}" for b in brokers))
    for name, *values in rows:
        print(f"{name:<{width}}" + "".join(f"  {v:>14}" for v in values))
    if len(brokers) == 2:
        first, second = (results[b]["two"] for b in brokers)
        print(f"\n{brokers[1]} vs {brokers[0]}, 2 worker processes: {second / first - 1:+.0%}")
    return 0


def dynalite_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``--backend dynalite`` (bench/replication_dynalite.py)."""
    parser.add_argument("--repeat", type=int, default=3, help="dynalite: runs per row, best kept")
    parser.add_argument(
        "--keys-per-message", type=int, default=None, help="dynalite: the producer's setting"
    )
    parser.add_argument(
        "--long-rounds", type=int, default=10, help="dynalite: rounds of --changes for memory"
    )
    parser.add_argument(
        "--rows",
        default="ceiling,workers,guard,long",
        help="dynalite: which parts to run (ceiling, workers, in-flight, guard, transform, long)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0,
        help="dynalite: delay every DynamoDB call by this much (a proxy in front of dynalite)",
    )


if __name__ == "__main__":
    sys.exit(main())
