"""Fixtures: a Redis of the tests' own, moto in server mode, environment for every process."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from tests.support import rabbitmq, servers


def _reset_process_caches() -> None:
    """Settings are read again from the environment; what was built from them is dropped,
    and the project's Celery app, once imported, is set up again from them (a process sets it
    up once, when it imports it; this one runs many tests, on other servers)."""
    from tasks.core import config

    config.reset()
    module = sys.modules.get("worker.app")
    if module is not None:
        from worker.settings import celery_config

        app = module.app
        app.close()  # its connection pool
        # Celery forgets its producer pool (kombu's, shared by key) only when it had made a
        # connection pool of its own: forget it always, so that the next send takes the pool
        # of the broker set up below.
        app.amqp._producer_pool = None
        tls_only = ("broker_read_url", "broker_write_url", "broker_use_ssl")
        app.conf.update(
            {
                **dict.fromkeys((*tls_only, "redis_backend_use_ssl")),
                **celery_config(config.settings()),
            }
        )


@pytest.fixture(scope="session")
def redis_server() -> Iterator[servers.Server]:
    server = servers.start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[servers.Server]:
    server = servers.start_moto()
    yield server
    server.stop()


@pytest.fixture()
def redis_url(redis_server: servers.Server) -> str:
    return f"redis://127.0.0.1:{redis_server.port}/0"


@pytest.fixture()
def redis_client(redis_url: str) -> Iterator[redis_lib.Redis]:
    client = redis_lib.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture()
def broker(request: pytest.FixtureRequest) -> str:
    """The broker the test runs on: ``redis``, or what ``rabbitmq.BOTH_BROKERS`` gives."""
    return str(getattr(request, "param", "redis"))


@pytest.fixture()
def broker_url(broker: str, redis_url: str) -> Iterator[str]:
    """The test's Redis, or a RabbitMQ vhost of the test's own (skipped, saying why, without)."""
    if broker == "redis":
        yield redis_url
        return
    reason = rabbitmq.unavailable()
    if reason:
        pytest.skip(reason)
    with rabbitmq.vhost() as url:
        yield url


@pytest.fixture()
def moto_url(moto_server: servers.Server) -> str:
    servers.reset_moto(moto_server.url)
    return moto_server.url


@pytest.fixture()
def env(
    redis_url: str,
    broker_url: str,
    moto_url: str,
    redis_client: redis_lib.Redis,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[dict[str, str]]:
    """The environment every process of a test shares (this one included)."""
    values = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": moto_url,
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "REPLICATOR_REDIS_URL": redis_url,
        "REPLICATOR_BACKOFF_BASE": "0.01",
        "REPLICATOR_TASK_BACKOFF_BASE": "0.2",
        "REPLICATOR_TASK_BACKOFF_CAP": "2",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    _reset_process_caches()
    yield dict(os.environ)
    _reset_process_caches()


@pytest.fixture()
def start_worker(env: dict[str, str], tmp_path: Path) -> Iterator[object]:
    """Start `celery -A worker worker` processes; all are stopped after the test."""
    started: list[servers.Worker] = []

    def start(
        concurrency: int = 2, extra_env: dict[str, str] | None = None, queues: str | None = None
    ) -> servers.Worker:
        worker = servers.start_worker(
            {**env, **(extra_env or {})}, concurrency, queues, tmp_path, name=f"w{len(started)}"
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture()
def start_producer(env: dict[str, str], tmp_path: Path) -> Iterator[object]:
    """Start `python -m producer ARGS` subprocesses; all are stopped after the test."""
    import sys

    started: list[servers.Command] = []

    def start(*args: str, extra_env: dict[str, str] | None = None) -> servers.Command:
        command = servers.start_command(
            [sys.executable, "-m", "producer", *args],
            {**env, **(extra_env or {})},
            tmp_path,
            "producer",
        )
        started.append(command)
        return command

    yield start
    for command in started:
        command.kill()


@pytest.fixture()
def fault_proxy(moto_url: str) -> Iterator[object]:
    """A fault-injecting proxy (tests/support/faultproxy.py) in front of this test's moto."""
    from tests.support.faultproxy import FaultProxy

    with FaultProxy(moto_url) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def dynalite_server() -> Iterator[servers.Server]:
    """dynalite (npm; `npm install` at the repo root), a second DynamoDB implementation."""
    try:
        server = servers.start_dynalite()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(params=["moto", "dynalite"])
def ddb_url(request: pytest.FixtureRequest, env: dict[str, str]) -> str:
    """A DynamoDB endpoint with no tables: moto's (reset by `env`) or dynalite's (emptied)."""
    if request.param == "moto":
        return str(request.getfixturevalue("moto_url"))
    from tests.support.tables import client

    url: str = request.getfixturevalue("dynalite_server").url
    ddb = client(url)
    for name in ddb.list_tables()["TableNames"]:
        ddb.delete_table(TableName=name)
    return url
