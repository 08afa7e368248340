"""RabbitMQ for tests: a vhost of the test's own on the machine's node, or a node of its own.

The machine's node (``rabbit@localhost``, 127.0.0.1:5672) is shared with other test runs: it is
started when it is not running (``rabbitmq-server -detached``), never stopped or restarted. A
test gets a vhost of its own there (``rabbitmqctl add_vhost``, guest's permissions), deleted
afterwards. A test that restarts the broker starts a node of its own (``Node``: its own name,
ports, data and log folders, no plugins) and restarts that one.

Suites that run on both brokers say so with ``pytestmark = BOTH_BROKERS``; the ``broker``
fixture (tests/conftest.py) is then ``redis`` or ``amqp``, and every process of the test gets
the broker's URL in ``CELERY_BROKER_URL``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pki import Pki
from tests.support.servers import _port_open, free_port, wait_until

BOTH_BROKERS = pytest.mark.parametrize("broker", ["redis", "amqp"], indirect=True)
HOST, PORT = "127.0.0.1", int(os.environ.get("REPLICATOR_TEST_RABBITMQ_PORT", "5672"))
MANAGEMENT_PORT = int(os.environ.get("REPLICATOR_TEST_RABBITMQ_MANAGEMENT_PORT", "15672"))
USER = PASSWORD = "guest"
_names = itertools.count()


def ctl(
    *args: str, node: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    command = ["rabbitmqctl", *(["-n", node] if node else []), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def installed() -> bool:
    return bool(shutil.which("rabbitmqctl") and shutil.which("rabbitmq-server"))


@functools.cache
def unavailable() -> str | None:
    """Why RabbitMQ cannot be used here (a skip reason), or None; starts the node if needed."""
    if not installed():
        return "RabbitMQ is not installed (rabbitmqctl and rabbitmq-server; scripts/setup.sh)"
    if not _port_open(PORT):
        subprocess.run(["rabbitmq-server", "-detached"], capture_output=True, check=False)
        ctl("await_startup", "--timeout", "90")
    if not _port_open(PORT):
        return f"no RabbitMQ answers on {HOST}:{PORT}, and `rabbitmq-server -detached` failed"
    return None


def url(vhost: str, port: int = PORT) -> str:
    return f"amqp://{USER}:{PASSWORD}@{HOST}:{port}/{vhost}"


@contextlib.contextmanager
def vhost() -> Iterator[str]:
    """A vhost of this test's own on the machine's node; yields its amqp:// URL."""
    name = f"replicator-test-{os.getpid()}-{next(_names)}-{uuid.uuid4().hex[:6]}"
    for args in (("add_vhost", name), ("set_permissions", "-p", name, USER, ".*", ".*", ".*")):
        done = ctl(*args)
        if done.returncode:
            ctl("delete_vhost", name)
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr}")
    try:
        yield url(name)
    finally:
        ctl("delete_vhost", name)


def management_api() -> str | None:
    """The management API's URL with credentials (Flower's --broker-api), if it answers."""
    if not _port_open(MANAGEMENT_PORT):
        return None
    return f"http://{USER}:{PASSWORD}@{HOST}:{MANAGEMENT_PORT}/api/"


class Node:
    """A RabbitMQ node of the test's own, started, stopped and restarted at will.

    With ``tls`` it also listens on ``tls_port`` (TLS, a client certificate signed by the test's
    CA required), and with ``management`` serves the management API on ``management_port``."""

    def __init__(self, tls: Pki | None = None, management: bool = False) -> None:
        self.name = f"replicator-test-{uuid.uuid4().hex[:8]}@localhost"
        self.port, self.dist_port = free_port(), free_port()
        self.tls_port, self.management_port = free_port(), free_port()
        self.base = Path(tempfile.mkdtemp(prefix="rabbitmq-node-"))
        lines = [f"listeners.tcp.1 = {HOST}:{self.port}"]
        if tls:
            lines += [
                f"listeners.ssl.1 = {HOST}:{self.tls_port}",
                f"ssl_options.cacertfile = {tls.ca}",
                f"ssl_options.certfile = {tls.server_cert}",
                f"ssl_options.keyfile = {tls.server_key}",
                "ssl_options.verify = verify_peer",
                "ssl_options.fail_if_no_peer_cert = true",
            ]
        if management:
            lines += [
                f"management.tcp.ip = {HOST}",
                f"management.tcp.port = {self.management_port}",
            ]
        (self.base / "rabbitmq.conf").write_text("\n".join(lines) + "\n")
        plugins = "[rabbitmq_management]" if management else "[]"
        (self.base / "enabled_plugins").write_text(f"{plugins}.\n")
        shutil.chown(self.base, "rabbitmq", "rabbitmq")  # the server runs as rabbitmq
        os.chmod(self.base, 0o755)
        self.log = self.base / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return url("", self.port)

    @property
    def tls_url(self) -> str:
        """The TLS listener's amqps:// URL (guest, the default vhost)."""
        return f"amqps://{USER}:{PASSWORD}@{HOST}:{self.tls_port}/"

    @property
    def management_api(self) -> str:
        """The management API's URL with credentials (Flower's --broker-api)."""
        return f"http://{USER}:{PASSWORD}@{HOST}:{self.management_port}/api/"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbitmq.pid"),
        }

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                ["rabbitmq-server"], env=self._env(), stdout=out, stderr=subprocess.STDOUT
            )
        process = self.process
        wait_until(
            lambda: _port_open(self.port) or process.poll() is not None,
            120,
            f"RabbitMQ node {self.name}",
            0.2,
        )
        if process.poll() is not None:
            raise RuntimeError(f"RabbitMQ node {self.name} exited; its log: {self.log}")
        done = ctl("await_startup", "--timeout", "60", node=self.name)
        if done.returncode:
            raise RuntimeError(f"RabbitMQ node {self.name} did not start: {done.stderr}")

    def stop(self) -> None:
        """Stop the node (``rabbitmqctl stop``): its connections close, its data stays."""
        ctl("stop", node=self.name)
        wait_until(lambda: not _port_open(self.port), 60, f"{self.name} to stop", 0.2)
        if self.process is not None:
            self.process.wait(60)
            self.process = None

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
