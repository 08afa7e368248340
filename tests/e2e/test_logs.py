"""Structured logs: JSON lines off a TTY, readable on one, --log-level everywhere, and no secret
or item content in any log of a run (worker, producer, commands)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from tests.support import servers
from tests.support.servers import ROOT, wait_until
from tests.support.tables import client, create_table, scan_all

SECRET = "planted-AWS-SECRET-6f1c2e"
REDIS_PASSWORD = "planted-redis-pw-93ab"
ITEM_VALUE = "planted-item-value-41d7"


@pytest.fixture()
def private_redis() -> Any:
    """A Redis that wants a password (the password then sits in every Redis URL)."""
    server = servers.start_redis(password=REDIS_PASSWORD)
    yield f"redis://:{REDIS_PASSWORD}@127.0.0.1:{server.port}/0"
    server.stop()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / args[0]), *args[1:]],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_no_secret_or_item_value_in_any_log(
    env: dict[str, str], moto_url: str, private_redis: str, start_worker: Any, start_producer: Any
) -> None:
    planted = {
        **env,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "CELERY_BROKER_URL": private_redis,
        "CELERY_RESULT_BACKEND": private_redis,
        "REPLICATOR_REDIS_URL": private_redis,
    }
    create_table(moto_url, "primary", stream="NEW_AND_OLD_IMAGES")
    create_table(moto_url, "replica")
    primary, replica = f"{moto_url}/primary", f"{moto_url}/replica"
    worker = start_worker(concurrency=1, extra_env=planted)
    producer = start_producer(
        "--primary", primary, "--replica", replica, "--log-level", "debug", extra_env=planted
    )
    ddb = client(moto_url)
    for i in range(20):
        ddb.put_item(
            TableName="primary", Item={"id": {"S": f"k{i}"}, "secret": {"S": f"{ITEM_VALUE}-{i}"}}
        )
    wait_until(lambda: len(scan_all(moto_url, "replica")) == 20, 60, "replication")
    assert producer.terminate() == 0
    # A difference for diff-tables to find: the planted value differs on one item.
    ddb.put_item(TableName="replica", Item={"id": {"S": "k3"}, "secret": {"S": ITEM_VALUE}})
    commands = [
        run(planted, "diff-tables", primary, replica, "--segments", "2", "--log-level", "debug"),
        run(planted, "diff-tables", primary, replica, "--log-level", "debug"),
        run(planted, "diff-record", primary, replica, '{"id":"k3"}', "--log-level", "debug"),
        run(planted, "replicator", "status", replica, "--log-level", "debug"),
        run(planted, "replicator", "dead-letters", "list", "--log-level", "debug"),
    ]
    assert [c.returncode for c in commands] == [1, 1, 1, 0, 0], [c.stderr for c in commands]

    logs = {"worker": worker.output(), "producer": producer.output()}
    logs.update({f"command {i}": c.stdout + c.stderr for i, c in enumerate(commands)})
    # diff-record's output is the two items side by side (that is what it is asked for); its
    # log (stderr) must still hold no item content.
    logs["command 2"] = commands[2].stderr
    assert ITEM_VALUE in commands[2].stdout
    for name, text in logs.items():
        for secret in (SECRET, REDIS_PASSWORD, ITEM_VALUE):
            assert secret not in text, f"{secret!r} appears in the {name} log"
    assert '[different] {"id":{"S":"k3"}}' in commands[0].stdout  # keys are shown

    # One JSON line per task and per segment, with task id, table, counts and seconds.
    worker_lines = json_lines(worker.output())
    replicated = [line for line in worker_lines if line.get("event") == "replicate"]
    assert replicated
    assert all(
        line["task_id"]
        and line["target"] == replica
        and "puts" in line
        and isinstance(line["seconds"], float)
        for line in replicated
    )
    assert sum(line["puts"] for line in replicated) >= 20
    segments = [line for line in worker_lines if line.get("event") == "diff-segment"]
    assert sorted(line["segment"] for line in segments) == [0, 1]
    assert all(
        line["task_id"] and line["replica"] == replica and "scanned" in line and "seconds" in line
        for line in segments
    )
    status = json_lines(producer.output())
    assert any(
        line.get("event") == "producer stopped" and line["records_read"] >= 20 for line in status
    )


def test_readable_lines_on_a_tty() -> None:
    code = (
        "from tasks.core import logs; logs.configure(); "
        "logs.get('demo').info('hello there', table='t1', count=3)"
    )
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdin=follower, stdout=follower, stderr=follower
    )
    process.wait(30)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    text = out.decode(errors="replace")
    assert "hello there" in text and "table" in text and "t1" in text
    assert not text.lstrip().startswith("{")


def _commands() -> dict[str, click.Command]:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    found: dict[str, click.Command] = {}
    for name, target in scripts.items():
        module, _, attr = target.partition(":")
        command = getattr(__import__(module, fromlist=[attr]), attr)
        found[name] = command
    from producer.cli import main as producer

    found["python -m producer"] = producer
    return found


def _leaves(name: str, command: click.Command) -> list[tuple[str, click.Command]]:
    if isinstance(command, click.Group):
        return [
            leaf
            for sub, child in command.commands.items()
            for leaf in _leaves(f"{name} {sub}", child)
        ]
    return [(name, command)]


def test_every_command_takes_log_level() -> None:
    leaves = [leaf for name, cmd in _commands().items() for leaf in _leaves(name, cmd)]
    assert len(leaves) >= 15
    missing = [name for name, cmd in leaves if not any("--log-level" in p.opts for p in cmd.params)]
    assert missing == []
    for name, cmd in leaves:
        option = next(p for p in cmd.params if "--log-level" in p.opts)
        assert option.envvar == "REPLICATOR_LOG_LEVEL", name
    result = CliRunner().invoke(_commands()["diff-tables"], ["--help"])
    assert "--log-level" in result.output


def test_an_unreachable_redis_is_named_without_its_password(env: dict[str, str]) -> None:
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0"
    unreachable = {**env, "REPLICATOR_REDIS_URL": url, "CELERY_BROKER_URL": url}
    result = run(unreachable, "replicator", "dead-letters", "list")
    assert result.returncode == 3
    assert "redis://:***@127.0.0.1:1/0" in result.stderr
    assert REDIS_PASSWORD not in result.stdout + result.stderr
