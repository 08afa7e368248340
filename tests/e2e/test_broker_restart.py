"""A RabbitMQ node restarted mid-stream: nothing is lost, and the workers and the producer
reconnect by themselves (no supervisor restarts them).

The node is the test's own (``rabbitmq.Node``: own name, ports and data folder): the machine's
node is shared and never restarted. Its queues are quorum queues, kept on disk across the
restart; the unacknowledged messages of the dropped connections are delivered again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_replication_pipeline import assert_converges, make_tables
from tests.support import rabbitmq
from tests.support.tables import client
from tests.support.workload import apply_mixed


@pytest.fixture()
def node() -> Iterator[rabbitmq.Node]:
    reason = rabbitmq.unavailable()
    if reason:
        pytest.skip(reason)
    own = rabbitmq.Node()
    try:
        own.start()
        yield own
    finally:
        own.remove()


def test_rabbitmq_restart_mid_stream_loses_nothing_and_workers_reconnect(
    env: dict[str, str],
    moto_url: str,
    node: rabbitmq.Node,
    start_worker: Any,
    start_producer: Any,
) -> None:
    own = {"CELERY_BROKER_URL": node.url}
    primary, replica = make_tables(moto_url, "composite", "KEYS_ONLY")
    workers = [start_worker(concurrency=2, extra_env=own), start_worker(1, extra_env=own)]
    producer = start_producer("--primary", primary, "--replica", replica, extra_env=own)
    ddb = client(moto_url)

    apply_mixed(ddb, "primary", "composite", ops=400, n_keys=150, seed=41)
    node.stop()  # every connection drops; queued and unacknowledged messages stay on disk
    apply_mixed(ddb, "primary", "composite", ops=200, n_keys=150, seed=42)
    node.start()
    apply_mixed(ddb, "primary", "composite", ops=200, n_keys=150, seed=43)

    assert_converges(moto_url, timeout=150)
    # Nobody restarted them: the same processes reconnected.
    assert all(worker.process.poll() is None for worker in workers)
    assert all("Connection to broker lost" in worker.output() for worker in workers)
    assert producer.process.poll() is None
    assert producer.terminate() == 0
    assert "enqueue failed; retrying" in producer.output()  # the broker really was gone
