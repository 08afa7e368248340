"""Flower as the diff monitor: a diff-tables job over real workers, watched in headless Chromium.

Flower (``replicator flower``, which runs ``celery -A worker flower`` with basic auth) is started
before the job so that it sees every task event; the tasks page is then opened in Debian's
``chromium`` with the credentials, and every ``diff-segment`` task of the job must be listed as
finished with its counts. The screenshot goes to the folder the test prints. Both run on Redis
and on RabbitMQ, and so does the broker page (the queues and their messages), which on RabbitMQ
Flower reads from the management API (``FLOWER_BROKER_API``).
"""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support import rabbitmq
from tests.support.rabbitmq import BOTH_BROKERS
from tests.support.servers import (
    ROOT,
    Command,
    celery_client,
    free_port,
    start_command,
    wait_until,
)
from tests.support.tables import client, create_table

USER, PASSWORD = "operator", "s3cret-flower-pw"
SEGMENTS = 4
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(
        "no chromium binary: scripts/setup.sh installs Debian's chromium package "
        "(apt-get install chromium); it could not be installed on this machine"
    )


def artifacts_dir() -> Path:
    base = Path(
        os.environ.get("REPLICATOR_TEST_ARTIFACTS")
        or Path(tempfile.gettempdir()) / "replicator-test-artifacts"
    )
    folder = base / f"flower-{time.strftime('%Y%m%dT%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def api(port: int, path: str, auth: bool = True) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if auth:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def start_flower(env: dict[str, str], tmp_path: Path, port: int, **extra: str) -> Command:
    replicator = str(Path(sys.executable).parent / "replicator")
    args = [replicator, "flower", "--port", str(port), "--address", "127.0.0.1"]
    return start_command(args, {**env, **broker_api(env), **extra}, tmp_path, "flower")


def broker_api(env: dict[str, str]) -> dict[str, str]:
    """On RabbitMQ, Flower reads the queues from the management API (skipped without it)."""
    if not env["CELERY_BROKER_URL"].startswith("amqp://"):
        return {}
    api = rabbitmq.management_api()
    if api is None:
        pytest.skip(
            "RabbitMQ's management API does not answer on 127.0.0.1:15672: "
            "`rabbitmq-plugins enable rabbitmq_management` (scripts/setup.sh does)"
        )
    return {"FLOWER_BROKER_API": api}


def plant_tables(moto_url: str) -> dict[str, int]:
    """200 items on the primary; the replica misses 5, has 3 extra and 4 different items."""
    create_table(moto_url, "primary")
    create_table(moto_url, "replica")
    ddb = client(moto_url)
    for i in range(200):
        item = {"id": {"S": f"k{i:03d}"}, "n": {"N": str(i)}}
        ddb.put_item(TableName="primary", Item=item)
        if i < 5:
            continue  # missing
        if i < 9:
            item = {**item, "n": {"N": str(i + 1000)}}  # different
        ddb.put_item(TableName="replica", Item=item)
    for i in range(3):
        ddb.put_item(TableName="replica", Item={"id": {"S": f"extra{i}"}})
    return {"missing": 5, "different": 4, "extraneous": 3}


def job_tasks(tasks: dict[str, Any], job: str) -> dict[int, dict[str, Any]]:
    """The job's diff-segment tasks by segment number, as Flower's API lists them."""
    found = {}
    for uuid, task in tasks.items():
        if task.get("name") != "diff-segment" or not task.get("args"):
            continue
        job_id, segment = ast.literal_eval(task["args"])
        if job_id == job:
            found[segment] = {**task, "uuid": uuid}
    return found


def render(
    binary: str, url: str, folder: Path, tmp_path: Path, shot: str = "flower-tasks.png"
) -> str:
    """The tasks page's DOM after its scripts ran, and a screenshot of it."""
    profile = tmp_path / "chromium-profile"
    common = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=8000"]
    dom = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False
    )
    subprocess.run(
        [*common, f"--screenshot={folder / shot}", "--window-size=2200,800", url],
        capture_output=True,
        timeout=120,
        check=False,
    )
    return dom.stdout


@BOTH_BROKERS
def test_flower_lists_every_diff_segment_with_its_counts(
    env: dict[str, str], moto_url: str, start_worker: Any, tmp_path: Path
) -> None:
    binary = chromium()
    planted = plant_tables(moto_url)
    metrics_port = free_port()
    start_worker(
        concurrency=2,
        extra_env={
            "REPLICATOR_METRICS_PORT": str(metrics_port),
            "REPLICATOR_METRICS_ADDRESS": "127.0.0.1",
        },
    )
    port = free_port()
    flower = start_flower(env, tmp_path, port, FLOWER_BASIC_AUTH=f"{USER}:{PASSWORD}")
    try:
        wait_until(lambda: _answers(port), 60, f"Flower\n{flower.output()}", interval=0.3)
        wait_until(
            lambda: bool(api(port, "/api/workers?refresh=1")),
            30,
            "Flower to see workers",
            interval=0.5,
        )
        diff = subprocess.run(
            [
                str(Path(sys.executable).parent / "diff-tables"),
                f"{moto_url}/primary",
                f"{moto_url}/replica",
                "--segments",
                str(SEGMENTS),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert diff.returncode == 1, diff.stderr
        summary = json.loads(diff.stdout.strip().splitlines()[-1])
        job = summary["job"]
        assert {k: summary[k] for k in planted} == planted

        def all_listed() -> bool:
            tasks = job_tasks(api(port, "/api/tasks?taskname=diff-segment"), job)
            return len(tasks) == SEGMENTS and all(t["state"] == "SUCCESS" for t in tasks.values())

        wait_until(all_listed, 30, "Flower's API to list every segment as finished", interval=0.5)
        tasks = job_tasks(api(port, "/api/tasks?taskname=diff-segment"), job)
        assert sorted(tasks) == list(range(SEGMENTS))
        results = {seg: ast.literal_eval(t["result"]) for seg, t in tasks.items()}
        for kind, n in planted.items():
            assert sum(r.get(kind, 0) for r in results.values()) == n, results
        assert sum(r["scanned"] for r in results.values()) == summary["scanned"]
        for task in tasks.values():  # the arguments show the tables and the segment count
            shown = ast.literal_eval(task["kwargs"])
            assert shown["primary"] == f"{moto_url}/primary"
            assert shown["replica"] == f"{moto_url}/replica"
            assert shown["segments"] == SEGMENTS

        # Bulk progress on the worker's metrics endpoint too.
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as response:
            text = response.read().decode()
        assert (
            f'replicator_bulk_segments{{job="{job}",kind="diff",status="done"}} {SEGMENTS}.0'
        ) in text
        assert 'replicator_queue_depth{queue="bulk"} 0.0' in text  # from the broker, either one

        folder = artifacts_dir()
        print(f"\nFlower screenshots and DOM: {folder}")
        url = f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/tasks"
        dom = render(binary, url, folder, tmp_path)
        (folder / "flower-tasks.html").write_text(dom)
        assert (folder / "flower-tasks.png").stat().st_size > 10_000
        for segment, task in tasks.items():
            assert task["uuid"] in dom, f"segment {segment} not on the tasks page ({folder})"
            assert f"{job}&#39;, {segment})" in dom or f"{job}', {segment})" in dom
        assert dom.count("SUCCESS") >= SEGMENTS
        assert "&#39;missing&#39;" in dom or "'missing'" in dom
    finally:
        flower.terminate()


def queue_lengths(port: int) -> dict[str, int]:
    queues = api(port, "/api/queues/length")["active_queues"]
    return {q["name"]: q.get("messages") for q in queues}  # RabbitMQ: none until counted


@BOTH_BROKERS
def test_flower_shows_the_queues_and_the_messages_waiting(
    env: dict[str, str], tmp_path: Path
) -> None:
    binary = chromium()
    port = free_port()
    flower = start_flower(env, tmp_path, port, FLOWER_BASIC_AUTH=f"{USER}:{PASSWORD}")
    try:
        wait_until(lambda: _answers(port), 60, f"Flower\n{flower.output()}", interval=0.3)
        # No worker runs: the messages wait in their queues (never executed).
        with celery_client(env) as app:
            for i in range(7):
                app.send_task("diff-segment", args=(f"nojob-{i}", 0))
            for i in range(3):
                app.send_task("replicate", args=("us-east-1/p", "us-east-1/r", [{"id": {"S": i}}]))
        want = {"replication": 3, "bulk": 7}
        # RabbitMQ's management API refreshes its counts every few seconds.
        wait_until(lambda: queue_lengths(port) == want, 60, "Flower's queue lengths", 1.0)

        folder = artifacts_dir()
        print(f"\nFlower broker page: {folder}")
        url = f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/broker"
        dom = render(binary, url, folder, tmp_path, "flower-broker.png")
        (folder / "flower-broker.html").write_text(dom)
        for queue, waiting in want.items():
            row = re.search(rf"<td>{queue}</td>\s*<td[^>]*>{waiting}</td>", dom)
            assert row, f"queue {queue} with {waiting} messages not on the broker page ({folder})"
    finally:
        flower.terminate()


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=2).read()
    except (urllib.error.URLError, OSError):
        return False
    return True


def test_flower_api_is_refused_without_credentials(env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    flower = start_flower(env, tmp_path, port, FLOWER_BASIC_AUTH=f"{USER}:{PASSWORD}")
    try:
        wait_until(lambda: _answers(port), 60, f"Flower\n{flower.output()}", interval=0.3)
        for path in ("/api/tasks", "/api/workers", "/tasks"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                api(port, path, auth=False)
            assert refused.value.code == 401, path
        assert isinstance(api(port, "/api/tasks"), dict)
    finally:
        flower.terminate()


def test_flower_refuses_to_start_without_credentials(env: dict[str, str], tmp_path: Path) -> None:
    bare = {k: v for k, v in env.items() if not k.startswith("FLOWER_")}
    for extra in ({}, {"FLOWER_BASIC_AUTH": "operator:"}, {"FLOWER_UNAUTHENTICATED_API": "true"}):
        port = free_port()
        flower = start_flower(bare, tmp_path, port, **extra)
        assert flower.process.wait(60) == 2, flower.output()
        out = flower.output()
        assert "FLOWER_BASIC_AUTH" in out
        assert "Traceback" not in out
        assert not _answers(port)


def test_flower_shows_a_migrations_phase_beside_its_segments(
    env: dict[str, str], moto_url: str, start_worker: Any, tmp_path: Path
) -> None:
    from tests.support.tables import client, create_table

    create_table(moto_url, "source", stream="KEYS_ONLY")
    for i in range(40):
        client(moto_url).put_item(TableName="source", Item={"id": {"S": f"k{i}"}})
    start_worker(concurrency=2)
    port = free_port()
    flower = start_flower(env, tmp_path, port, FLOWER_BASIC_AUTH=f"{USER}:{PASSWORD}")
    try:
        wait_until(lambda: _answers(port), 60, f"Flower\n{flower.output()}", interval=0.3)
        wait_until(lambda: bool(api(port, "/api/workers?refresh=1")), 30, "workers", interval=0.5)
        migrate = subprocess.run(
            [
                str(Path(sys.executable).parent / "replicator"),
                "migrate",
                f"{moto_url}/source",
                f"{moto_url}/target",
                "--create",
                "--segments",
                "2",
                "--verify",
                "sample:3",
                "--exit-when-ready",
                "--name",
                "shown",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stderr

        def phases() -> dict[str, int]:
            seen: dict[str, int] = {}
            for task in api(port, "/api/tasks?taskname=diff-segment").values():
                shown = ast.literal_eval(task.get("kwargs") or "{}")
                if shown.get("migration") == "shown":
                    seen[shown["phase"]] = seen.get(shown["phase"], 0) + 1
            return seen

        wait_until(lambda: phases() == {"backfill": 2, "verify": 3}, 30, "Flower to list them")
    finally:
        flower.terminate()
