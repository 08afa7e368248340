"""Faults on the way: killed and frozen workers, a throttling endpoint, a Redis restart, dead
letters; on Redis and on RabbitMQ as broker, with the shipped redelivery settings.

Producer and workers are real processes; they reach moto through a fault-injecting proxy.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from tests.e2e.test_replication_pipeline import assert_converges
from tests.support import servers
from tests.support.faultproxy import Rule
from tests.support.rabbitmq import BOTH_BROKERS
from tests.support.servers import wait_until
from tests.support.tables import client, create_table, normalized_table, scan_all
from tests.support.workload import apply_mixed

pytestmark = BOTH_BROKERS

# The failure bounds with the shipped settings (README "Failure bounds"): a dead worker's keys
# are applied within this many seconds. Convergence is polled up to the bound: it is what the
# system promises, not a speed measurement.
REDELIVERY_BOUND = {"amqp": 10.0, "redis": 60.0}


def _tables(moto_url: str, proxy_url: str, view: str = "KEYS_ONLY") -> tuple[str, str]:
    create_table(moto_url, "primary", ("id", "S"), ("seq", "N"), stream=view)
    create_table(moto_url, "replica", ("id", "S"), ("seq", "N"))
    return f"{proxy_url}/primary", f"{proxy_url}/replica"


def _insert_distinct(moto_url: str, n: int) -> None:
    ddb = client(moto_url)
    for i in range(n):
        ddb.put_item(
            TableName="primary",
            Item={"id": {"S": f"k{i}"}, "seq": {"N": str(i)}, "v": {"S": "x" * (i % 50)}},
        )


def _settled_count(moto_url: str) -> int:
    """The replica's item count once it has stopped changing for two seconds."""
    seen: list[int] = []

    def still() -> bool:
        seen.append(len(scan_all(moto_url, "replica")))
        return len(seen) >= 5 and len(set(seen[-5:])) == 1

    wait_until(still, 120, "the replica to stop changing", interval=0.5)
    return seen[-1]


def _seconds_to_converge(moto_url: str, began: float, bound: float) -> float:
    def same() -> bool:
        return normalized_table(moto_url, "replica") == normalized_table(moto_url, "primary")

    try:
        wait_until(same, bound - (time.monotonic() - began), "the replica", interval=0.2)
    except TimeoutError:
        missing = 300 - len(scan_all(moto_url, "replica"))
        raise AssertionError(
            f"{missing} keys still missing {bound:g} s after the failure"
        ) from None
    return time.monotonic() - began


def _worker_lost_mid_write(
    broker: str,
    moto_url: str,
    fault_proxy: Any,
    start_worker: Any,
    start_producer: Any,
    lose: Callable[[servers.Worker], None],
) -> float:
    """Distinct keys written once; the worker holding the first replica write is lost as
    ``lose`` says while a second worker runs. Returns the seconds until the replica converged."""
    primary, replica = _tables(moto_url, fault_proxy.url)
    # The held write never reaches the replica (dropped at the end): only a redelivery of the
    # lost message can bring its keys over.
    held = fault_proxy.add_rule(
        Rule("BatchWriteItem", action="hold", table="replica", first=1, hold_timeout=900)
    )
    doomed = start_worker(concurrency=1)
    producer = start_producer("--primary", primary, "--replica", replica)
    _insert_distinct(moto_url, 300)
    held.wait_held(1, timeout=60)  # the task has read the primary and is writing the replica
    start_worker(concurrency=2)  # shipped settings; it takes every other message meanwhile
    assert _settled_count(moto_url) < 300  # the keys of the held message wait for it

    began = time.monotonic()
    lose(doomed)
    took = _seconds_to_converge(moto_url, began, REDELIVERY_BOUND[broker])
    print(f"\n[redelivery] {broker}: replica converged {took:.1f} s after the worker was lost")
    held.release(drop=True)
    assert len(normalized_table(moto_url, "replica")) == 300
    assert producer.terminate() == 0
    return took


def test_worker_sigkilled_mid_write_is_redelivered_within_the_bound(
    broker: str, moto_url: str, fault_proxy: Any, start_worker: Any, start_producer: Any
) -> None:
    _worker_lost_mid_write(
        broker, moto_url, fault_proxy, start_worker, start_producer, servers.Worker.kill
    )


def test_frozen_worker_is_redelivered_within_the_bound_then_killed(
    broker: str, moto_url: str, fault_proxy: Any, start_worker: Any, start_producer: Any
) -> None:
    """SIGSTOP: the worker's connections stay open and nothing answers on them (its machine
    vanished); the broker must notice by itself. SIGKILLed later, it changes nothing."""
    frozen: list[servers.Worker] = []

    def freeze(worker: servers.Worker) -> None:
        worker.freeze()
        frozen.append(worker)

    _worker_lost_mid_write(broker, moto_url, fault_proxy, start_worker, start_producer, freeze)
    before = normalized_table(moto_url, "replica")
    frozen[0].kill()
    time.sleep(2)
    assert normalized_table(moto_url, "replica") == before == normalized_table(moto_url, "primary")


def test_pool_process_sigkilled_mid_task_is_requeued(
    env: dict[str, str], moto_url: str, fault_proxy: Any, start_worker: Any, start_producer: Any
) -> None:
    primary, replica = _tables(moto_url, fault_proxy.url)
    held = fault_proxy.add_rule(Rule("BatchWriteItem", action="hold", table="replica", first=1))
    worker = start_worker(concurrency=1)
    start_producer("--primary", primary, "--replica", replica)
    _insert_distinct(moto_url, 300)

    held.wait_held(1, timeout=30)
    (child,) = worker.pool_pids()
    subprocess.run(["kill", "-9", str(child)], check=True)
    held.release()

    assert_converges(moto_url, timeout=120)
    assert "WorkerLostError" in worker.output() or "signal 9" in worker.output()


def test_throttling_and_unprocessed_items_everywhere_still_converge(
    env: dict[str, str], moto_url: str, fault_proxy: Any, start_worker: Any, start_producer: Any
) -> None:
    primary, replica = _tables(moto_url, fault_proxy.url, view="NEW_AND_OLD_IMAGES")
    rules = [
        fault_proxy.add_rule(Rule("BatchGetItem", action="throttle", probability=0.3, seed=1)),
        fault_proxy.add_rule(Rule("BatchGetItem", action="unprocessed", probability=0.5, seed=2)),
        fault_proxy.add_rule(Rule("BatchWriteItem", action="error", probability=0.1, seed=3)),
        fault_proxy.add_rule(Rule("BatchWriteItem", action="throttle", probability=0.3, seed=4)),
        fault_proxy.add_rule(Rule("BatchWriteItem", action="unprocessed", probability=0.5, seed=5)),
        fault_proxy.add_rule(Rule("GetRecords", action="throttle", probability=0.2, seed=6)),
    ]
    start_worker(concurrency=2)
    producer = start_producer("--primary", primary, "--replica", replica)

    apply_mixed(client(moto_url), "primary", "composite", ops=800, n_keys=200, seed=9)

    assert_converges(moto_url, timeout=120)
    assert all(rule.fired > 0 for rule in rules), [(r.operation, r.action, r.fired) for r in rules]
    assert producer.terminate() == 0
    dead = _replicator(env, "dead-letters", "list")
    assert dead.stdout.strip().endswith("[dead-letters] 0"), dead.stdout


def _replicator(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from commands.replicator import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=servers.ROOT,
        check=False,
    )


def test_keys_that_keep_failing_are_dead_lettered_then_replayed(
    env: dict[str, str], moto_url: str, fault_proxy: Any, start_worker: Any, start_producer: Any
) -> None:
    primary, replica = _tables(moto_url, fault_proxy.url)
    broken = fault_proxy.add_rule(Rule("BatchWriteItem", action="error", table="replica"))
    start_worker(
        concurrency=2,
        extra_env={
            "REPLICATOR_TASK_MAX_ATTEMPTS": "2",
            "REPLICATOR_BATCH_MAX_ATTEMPTS": "2",
            "REPLICATOR_AWS_MAX_ATTEMPTS": "1",
            "REPLICATOR_TASK_BACKOFF_CAP": "0.5",
        },
    )
    start_producer("--primary", primary, "--replica", replica)
    _insert_distinct(moto_url, 40)

    def dead_count() -> int:
        listing = _replicator(env, "dead-letters", "list").stdout.strip().splitlines()
        return int(listing[-1].split()[-1]) if listing else -1

    wait_until(lambda: dead_count() == 40, 60, "40 dead letters", interval=0.5)
    listing = _replicator(env, "dead-letters", "list").stdout
    assert "[replicate]" in listing and "InternalServerError" in listing
    assert normalized_table(moto_url, "replica") == {}

    fault_proxy.remove_rule(broken)
    replay = _replicator(env, "dead-letters", "replay")
    assert replay.returncode == 0 and "[replayed] 40" in replay.stdout

    assert_converges(moto_url)
    assert dead_count() == 0


def test_redis_restart_mid_stream_converges(
    broker: str,
    env: dict[str, str],
    moto_url: str,
    start_worker: Any,
    start_producer: Any,
    tmp_path: Any,
) -> None:
    redis = servers.start_redis(appendonly=True, workdir=tmp_path)
    url = f"redis://127.0.0.1:{redis.port}/0"
    own = {
        "CELERY_BROKER_URL": url if broker == "redis" else env["CELERY_BROKER_URL"],
        "CELERY_RESULT_BACKEND": url,
        "REPLICATOR_REDIS_URL": url,
    }
    primary, replica = _tables(moto_url, moto_url)
    workers = [start_worker(concurrency=2, extra_env=own)]

    def supervised_convergence() -> bool:
        # Celery's worker may exit when its broker vanishes; a supervisor (compose's restart
        # policy) starts it again, as this loop does.
        if workers[-1].process.poll() is not None:
            workers.append(start_worker(concurrency=2, extra_env=own))
        return normalized_table(moto_url, "replica") == normalized_table(moto_url, "primary")

    try:
        producer = start_producer("--primary", primary, "--replica", replica, extra_env=own)
        ddb = client(moto_url)
        apply_mixed(ddb, "primary", "composite", ops=400, n_keys=150, seed=31)
        redis.stop()  # SIGTERM: Redis writes its append-only file and exits
        apply_mixed(ddb, "primary", "composite", ops=200, n_keys=150, seed=32)
        redis = servers.start_redis(appendonly=True, port=redis.port, workdir=tmp_path)
        apply_mixed(ddb, "primary", "composite", ops=200, n_keys=150, seed=33)

        wait_until(supervised_convergence, 150, "convergence after a Redis restart", 1.0)
        assert producer.terminate() == 0
        assert "enqueue failed; retrying" in producer.output()  # Redis really was gone
    finally:
        redis.stop()
