"""Prometheus endpoints of a real run: the producer's and a worker's, scraped while they work."""

from __future__ import annotations

import socket
import sys
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.rabbitmq import BOTH_BROKERS
from tests.support.servers import free_port, start_command, wait_until
from tests.support.tables import client, create_table

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def names(samples: Samples) -> set[str]:
    return {n for n, _ in samples}


def put_items(moto_url: str, start: int, count: int) -> None:
    ddb = client(moto_url)
    for i in range(start, start + count):
        ddb.put_item(TableName="primary", Item={"id": {"S": f"k{i}"}, "n": {"N": str(i)}})


@BOTH_BROKERS  # queue depth comes from the broker: Redis's lists, or RabbitMQ's queues
def test_producer_and_worker_metrics_move_during_a_run(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any, broker: str
) -> None:
    create_table(moto_url, "primary", stream="KEYS_ONLY")
    create_table(moto_url, "replica")
    primary, replica = f"{moto_url}/primary", f"{moto_url}/replica"
    worker_port, producer_port = free_port(), free_port()
    metrics_env = {
        "REPLICATOR_METRICS_PORT": str(worker_port),
        "REPLICATOR_METRICS_ADDRESS": "127.0.0.1",
    }
    worker = start_worker(concurrency=2, extra_env=metrics_env)
    producer = start_producer(
        "--primary",
        primary,
        "--replica",
        replica,
        "--metrics-port",
        str(producer_port),
        "--metrics-address",
        "127.0.0.1",
    )

    put_items(moto_url, 0, 30)
    put = ("replicator_items_put_total", {"target": replica})
    wait_until(
        lambda: value(scrape(worker_port), put[0], **put[1]) >= 30,
        60,
        f"30 puts on the worker endpoint\n{worker.output()[-2000:]}",
        interval=0.5,
    )
    first_worker, first_producer = scrape(worker_port), scrape(producer_port)
    assert value(first_producer, "replicator_producer_records_read_total") >= 30
    assert value(first_producer, "replicator_producer_keys_enqueued_total") >= 30

    put_items(moto_url, 30, 20)
    wait_until(
        lambda: value(scrape(worker_port), put[0], **put[1]) >= 50,
        60,
        "50 puts on the worker endpoint",
        interval=0.5,
    )
    wait_until(
        lambda: value(scrape(producer_port), "replicator_producer_records_read_total") >= 50,
        30,
        "the producer to read 50 records",
        interval=0.5,
    )
    worker_now, producer_now = scrape(worker_port), scrape(producer_port)

    # The values move.
    assert value(worker_now, *put[:1], **put[1]) > value(first_worker, *put[:1], **put[1])
    assert value(worker_now, "replicator_primary_reads_total", target=replica) >= 50
    assert value(producer_now, "replicator_producer_records_read_total") > value(
        first_producer, "replicator_producer_records_read_total"
    )
    # Lag, queue depth, checkpoints and dead letters are all there, by their documented names.
    assert {
        "replicator_replication_lag_seconds",
        "replicator_queue_depth",
        "replicator_dead_letters",
        "replicator_last_applied_timestamp_seconds",
    } <= names(worker_now)
    # kombu's unacked hash on Redis; AMQP has no such count (RabbitMQ's management API has)
    assert ("replicator_unacked_messages" in names(worker_now)) == (broker == "redis")
    lag_max = value(worker_now, "replicator_replication_lag_seconds", target=replica, quantile="1")
    assert 0 < lag_max < 600
    assert {("replicator_queue_depth", (("queue", q),)) for q in ("replication", "bulk")} <= set(
        worker_now
    )
    assert value(worker_now, "replicator_dead_letters") == 0
    assert {
        "replicator_producer_lag_seconds",
        "replicator_producer_iterator_age_seconds",
        "replicator_producer_checkpoint_stalled_seconds",
        "replicator_producer_retention_used_ratio",
        "replicator_producer_checkpoint_age_seconds",
        "replicator_producer_gaps_total",
        "replicator_producer_leases",
        "replicator_producer_ready_shards",
        "replicator_producer_leases_lost_total",
        "replicator_producer_checkpoints_refused_total",
    } <= names(producer_now)
    assert value(producer_now, "replicator_producer_active_shards") >= 1
    assert value(producer_now, "replicator_producer_gaps_total") == 0
    assert sum(v for (n, _), v in producer_now.items() if n == "replicator_producer_leases") >= 1
    assert producer.terminate() == 0, producer.output()


def test_a_metrics_port_in_use_is_one_clear_error(
    env: dict[str, str], moto_url: str, tmp_path: Any
) -> None:
    create_table(moto_url, "primary", stream="KEYS_ONLY")
    create_table(moto_url, "replica")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        producer = start_command(
            [
                sys.executable,
                "-m",
                "producer",
                "--primary",
                f"{moto_url}/primary",
                "--replica",
                f"{moto_url}/replica",
                "--metrics-address",
                "127.0.0.1",
            ],
            {**env, "REPLICATOR_METRICS_PORT": str(port)},
            tmp_path,
            "producer",
        )
        assert producer.process.wait(60) == 2
        worker = start_command(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "worker",
                "worker",
                "--pool",
                "solo",
                "--without-gossip",
                "--without-mingle",
            ],
            {
                **env,
                "REPLICATOR_METRICS_PORT": str(port),
                "REPLICATOR_METRICS_ADDRESS": "127.0.0.1",
            },
            tmp_path,
            "worker",
        )
        worker_status = worker.process.wait(60)
    out = producer.output()
    assert f"metrics on port {port}" in out, out
    assert "Traceback" not in out
    assert worker_status == 2, worker.output()
    assert f"metrics on port {port}" in worker.output()


def test_throttles_and_retries_are_counted(
    env: dict[str, str], moto_url: str, fault_proxy: Any, start_worker: Any
) -> None:
    from tests.support.faultproxy import Rule
    from worker.app import app

    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    put_items(moto_url, 0, 10)
    primary, replica = f"{fault_proxy.url}/primary", f"{fault_proxy.url}/replica"
    port = free_port()
    start_worker(
        concurrency=1,
        extra_env={
            "REPLICATOR_METRICS_PORT": str(port),
            "REPLICATOR_METRICS_ADDRESS": "127.0.0.1",
            "REPLICATOR_AWS_MAX_ATTEMPTS": "1",
            "REPLICATOR_BATCH_MAX_ATTEMPTS": "3",
        },
    )
    keys = [{"id": {"S": f"k{i}"}} for i in range(10)]

    # Throttled: one BatchGetItem on the primary, two partial BatchWriteItem on the replica.
    fault_proxy.add_rule(Rule("BatchGetItem", action="throttle", table="primary", first=1))
    fault_proxy.add_rule(Rule("BatchWriteItem", action="unprocessed", table="replica", first=2))
    app.send_task("replicate", args=(primary, replica, keys[:5]))

    def throttled() -> tuple[float, float]:
        samples = scrape(port)
        return (
            value(samples, "replicator_throttles_total", table=primary, side="primary"),
            value(samples, "replicator_throttles_total", table=replica, side="replica"),
        )

    try:
        wait_until(lambda: throttled() == (1, 2), 30, "throttles", interval=0.3)
    except TimeoutError:
        counts = (
            fault_proxy.counts("BatchGetItem", "primary"),
            fault_proxy.counts("BatchWriteItem", "replica"),
        )
        raise AssertionError(f"throttles {throttled()}; proxy {counts}") from None
    fault_proxy.clear_rules()

    # Failing writes (3 attempts of ours x 2 of botocore's): the keys are sent again on their
    # own, then succeed.
    fault_proxy.add_rule(Rule("BatchWriteItem", action="error", table="replica", first=6))
    app.send_task("replicate", args=(primary, replica, keys[5:]))
    wait_until(
        lambda: value(scrape(port), "replicator_items_put_total", target=replica) == 10,
        60,
        "every key put",
        interval=0.3,
    )
    samples = scrape(port)
    assert value(samples, "replicator_key_retries_total", target=replica) == 5
    assert value(samples, "replicator_key_failures_total", target=replica) == 5
    assert value(samples, "replicator_dead_lettered_keys_total", target=replica) == 0
