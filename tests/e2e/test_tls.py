"""TLS and passwords: a redis-server that speaks only TLS, wants a password and a client
certificate (mutual TLS) signed by the test's own CA (tests/support/pki.py), as broker, results
and coordination store; and a RabbitMQ node of the test's own with a TLS listener as broker.

The machine's shared RabbitMQ node cannot get a TLS listener without a restart, so the RabbitMQ
runs start a node of their own (``rabbitmq.Node(tls=...)``, with the management API for Flower).

On each: replication through the producer and a worker, a diff fanned out to the worker, and
Flower's queue counts. With the shipped defaults, a CA that did not sign the server's
certificate, no CA at all (a bare rediss:// or amqps:// URL verifies) and a wrong password give
one ``error:`` line naming the server and the cause, exit 2, from the commands, the producer and
the worker. No password appears in any output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from producer.enqueue import Enqueuer, Target
from producer.filters import RecordFilter
from producer.poller import Poller, PollerOptions
from producer.sources.dynamodb_streams import DynamoDBStreamsSource
from tasks.coord import reach
from tasks.coord.redis_conn import connection
from tasks.core import config
from tasks.core.config import settings
from tasks.core.tls import host as host_of
from tests.e2e.test_flower import PASSWORD as FLOWER_PASSWORD
from tests.e2e.test_flower import USER, _answers, queue_lengths, start_flower
from tests.support import pki, rabbitmq, servers
from tests.support.fake_streams import FakeStreams
from tests.support.servers import ROOT, celery_client, free_port, wait_until
from tests.support.tables import client, create_table, scan_all, table

REDIS_PASSWORD = "planted-tls-redis-pw-5e1d"


@dataclass(frozen=True)
class Secured:
    """The environment a test's processes get for a secured set-up, and what Flower needs."""

    extra: dict[str, str]  # on top of the test's env
    flower: dict[str, str]
    broker_host: str  # 127.0.0.1:PORT of the broker, as errors name it


@pytest.fixture(scope="module")
def certs() -> Iterator[pki.Pki]:
    """Outside pytest's temporary folders, which the RabbitMQ node's user cannot enter."""
    folder = Path(tempfile.mkdtemp(prefix="replicator-pki-"))
    yield pki.make(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_redis(certs: pki.Pki) -> Iterator[servers.Server]:
    reason = servers.redis_tls_unavailable()
    if reason:
        pytest.skip(reason)
    server = servers.start_redis(password=REDIS_PASSWORD, tls=certs)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_node(certs: pki.Pki) -> Iterator[rabbitmq.Node]:
    if not rabbitmq.installed():
        pytest.skip("RabbitMQ is not installed (rabbitmq-server; scripts/setup.sh)")
    node = rabbitmq.Node(tls=certs, management=True)
    node.start()
    yield node
    node.remove()


def tls_files(certs: pki.Pki) -> dict[str, str]:
    return {
        "REPLICATOR_TLS_CA_FILE": str(certs.ca),
        "REPLICATOR_TLS_CERT_FILE": str(certs.client_cert),
        "REPLICATOR_TLS_KEY_FILE": str(certs.client_key),
    }


def tls_url(server: servers.Server, password: str = REDIS_PASSWORD) -> str:
    return f"rediss://:{password}@127.0.0.1:{server.port}/0"


@pytest.fixture(params=["redis", "amqp"])
def secured(
    request: pytest.FixtureRequest,
    env: dict[str, str],
    certs: pki.Pki,
    tls_redis: servers.Server,
    monkeypatch: pytest.MonkeyPatch,
) -> Secured:
    """Every connection over TLS with a password: Redis for all, or RabbitMQ as broker. This
    process's environment gets it too (Celery reads CELERY_RESULT_BACKEND from there)."""
    url = tls_url(tls_redis)
    extra = {**tls_files(certs), "REPLICATOR_REDIS_URL": url, "CELERY_RESULT_BACKEND": url}
    flower = {"FLOWER_BASIC_AUTH": f"{USER}:{FLOWER_PASSWORD}"}
    if request.param == "redis":
        found = Secured({**extra, "CELERY_BROKER_URL": url}, flower, f"127.0.0.1:{tls_redis.port}")
    else:
        node: rabbitmq.Node = request.getfixturevalue("tls_node")
        found = Secured(
            {**extra, "CELERY_BROKER_URL": node.tls_url},
            {**flower, "FLOWER_BROKER_API": node.management_api},
            f"127.0.0.1:{node.tls_port}",
        )
    for name, value in found.extra.items():
        monkeypatch.setenv(name, value)
    config.reset()
    flushed = reach.redis_client(settings().redis)
    flushed.flushall()
    flushed.close()
    return found


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "producer"] if args[0] == "producer" else []
    command = command or [str(Path(sys.executable).parent / args[0])]
    return subprocess.run(
        [*command, *args[1:]],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_no_secret(outputs: dict[str, str]) -> None:
    for name, text in outputs.items():
        for secret in (REDIS_PASSWORD, FLOWER_PASSWORD):
            assert secret not in text, f"a password appears in the output of {name}"


def test_replication_a_fanned_out_diff_and_flower_over_tls(
    env: dict[str, str],
    secured: Secured,
    moto_url: str,
    start_worker: Any,
    start_producer: Any,
    tmp_path: Path,
) -> None:
    tls_env = {**env, **secured.extra}
    create_table(moto_url, "primary", stream="KEYS_ONLY")
    create_table(moto_url, "replica")
    primary, replica = f"{moto_url}/primary", f"{moto_url}/replica"
    worker = start_worker(concurrency=2, extra_env=secured.extra)
    producer = start_producer("--primary", primary, "--replica", replica, extra_env=secured.extra)
    ddb = client(moto_url)
    for i in range(20):
        ddb.put_item(TableName="primary", Item={"id": {"S": f"k{i}"}, "n": {"N": str(i)}})
    wait_until(lambda: len(scan_all(moto_url, "replica")) == 20, 60, "replication over TLS")
    assert producer.terminate() == 0, producer.output()

    ddb.put_item(TableName="replica", Item={"id": {"S": "k3"}, "n": {"N": "-1"}})
    diff = run(tls_env, "diff-tables", primary, replica, "--segments", "2")
    assert diff.returncode == 1, diff.stderr
    summary = json.loads(diff.stdout.strip().splitlines()[-1])
    assert (summary["different"], summary["missing"], summary["extraneous"]) == (1, 0, 0)
    worker.stop()  # from now on the messages sent wait in their queues, for Flower to count

    port = free_port()
    flower = start_flower(tls_env, tmp_path, port, **secured.flower)
    try:
        wait_until(lambda: _answers(port), 60, f"Flower\n{flower.output()}", interval=0.3)
        with celery_client(tls_env) as app:
            for i in range(3):
                app.send_task("diff-segment", args=(f"nojob-{i}", 0))
        # RabbitMQ's management API refreshes its counts every few seconds.
        wait_until(lambda: queue_lengths(port).get("bulk") == 3, 60, "Flower's queue page", 1.0)
    finally:
        flower.terminate()
    outputs = {"worker": worker.output(), "producer": producer.output(), "flower": flower.output()}
    assert_no_secret({**outputs, "diff-tables": diff.stdout + diff.stderr})


def assert_refused(result: subprocess.CompletedProcess[str], host: str, cause: str) -> None:
    """Exit 2 and one ``error:`` line naming the server and the cause, nothing else."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert result.returncode == 2, result.stderr
    assert len(errors) == 1, result.stderr
    assert host in errors[0] and cause in errors[0], errors[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("case", "cause"),
    [
        ("wrong CA", "certificate does not verify"),
        ("no CA", "certificate does not verify"),
        ("wrong password", "refused the password"),
    ],
)
def test_a_wrong_ca_or_password_is_one_clear_line_everywhere(
    env: dict[str, str],
    secured: Secured,
    certs: pki.Pki,
    tls_redis: servers.Server,
    moto_url: str,
    case: str,
    cause: str,
) -> None:
    bad = dict(secured.extra)
    if case == "wrong CA":
        bad["REPLICATOR_TLS_CA_FILE"] = str(certs.other_ca)
    elif case == "no CA":  # the shipped default: the system's CAs, which never signed it
        del bad["REPLICATOR_TLS_CA_FILE"]
    elif "amqps" in bad["CELERY_BROKER_URL"]:  # only the broker's password is wrong
        bad["CELERY_BROKER_URL"] = bad["CELERY_BROKER_URL"].replace("guest:guest@", "guest:no@")
    else:
        wrong = tls_url(tls_redis, "not-the-password")
        bad.update({k: wrong for k in bad if k.endswith("_URL") or k.endswith("BACKEND")})
    bad_env = {**env, **bad}
    create_table(moto_url, "primary", stream="KEYS_ONLY")
    create_table(moto_url, "replica")
    primary, replica = f"{moto_url}/primary", f"{moto_url}/replica"
    # Redis is reached first: a CA it does not take is named for Redis, whatever the broker
    host = secured.broker_host if case == "wrong password" else f"127.0.0.1:{tls_redis.port}"
    for args in (
        ("diff-tables", primary, replica, "--segments", "2"),
        ("producer", "--primary", primary, "--replica", replica),
        ("replicator", "dead-letters", "replay"),
    ):
        result = run(bad_env, *args)
        assert_refused(result, host, cause)
        assert_no_secret({args[0]: result.stdout + result.stderr})
    with pytest.raises(RuntimeError) as stopped:  # the worker says why, and stops
        servers.start_worker(bad_env)
    said = str(stopped.value)
    assert said.startswith("worker exited with status 2")
    assert "cannot connect" in said and cause in said and host in said
    assert_no_secret({"worker": said})


def test_plain_text_to_the_tls_port_and_tls_to_a_plain_port_are_named(
    env: dict[str, str], certs: pki.Pki, tls_redis: servers.Server, redis_url: str
) -> None:
    for url, host, cause in (
        (
            f"redis://:{REDIS_PASSWORD}@127.0.0.1:{tls_redis.port}/0",
            f"127.0.0.1:{tls_redis.port}",
            "a TLS port spoken to in plain text? Use rediss://",
        ),
        (
            redis_url.replace("redis://", "rediss://"),
            host_of(redis_url),
            "is it a plain (non-TLS) port? Use redis://",
        ),
    ):
        urls = {"REPLICATOR_REDIS_URL": url, "CELERY_BROKER_URL": url}
        result = run({**env, **tls_files(certs), **urls}, "replicator", "dead-letters", "list")
        assert_refused(result, host, cause)
        assert_no_secret({"replicator": result.stdout + result.stderr})


def test_the_producer_stops_on_a_certificate_failure_instead_of_retrying(
    env: dict[str, str], certs: pki.Pki, tls_redis: servers.Server
) -> None:
    """Past the start-up check (a broker whose certificate changed, say), a publish that fails
    verification stops the producer with the cause; its checkpoint does not move."""
    fake = FakeStreams()
    fake.add_shard("a")
    fake.put("a", "k1")
    wrong_ca = {**env, **tls_files(certs), "CELERY_BROKER_URL": tls_url(tls_redis)}
    wrong_ca["REPLICATOR_TLS_CA_FILE"] = str(certs.other_ca)
    primary = "http://127.0.0.1:1/primary"
    source = DynamoDBStreamsSource(table(primary), stream_arn=fake.arn, client=fake)
    with celery_client(wrong_ca) as app:
        target = Target("replicate", "us-east-1/replica", "us-east-1/replica")
        enqueuer = Enqueuer(app, connection(), primary, [target])
        options = PollerOptions(idle_sleep=0.01, discover_every=0.05, status_every=3600)
        poller = Poller(source, "c", enqueuer, RecordFilter(), options)
        thread = threading.Thread(target=poller.run, daemon=True)
        thread.start()
        thread.join(120)
    assert not thread.is_alive()  # it stopped by itself
    failure = poller.reader.failure
    assert failure is not None and "certificate does not verify" in str(failure)
    assert not connection().hgetall(settings().key("checkpoint", "c"))
