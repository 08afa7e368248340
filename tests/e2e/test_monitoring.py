"""The operator's dashboards: the alert rules (docker/prometheus/rules.yml) pass promtool and
are the operations guide's alerts; every metric the rules and the Grafana dashboard
(docker/grafana/dashboards/replicator.json) name is one the processes export: a worker, a
producer and a verifier of a real run are scraped for it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.migration import REPLICATOR
from tests.support.servers import ROOT, free_port, start_command, wait_until
from tests.support.tables import client, create_table, scan_all

RULES = ROOT / "docker" / "prometheus" / "rules.yml"
CONFIG = ROOT / "docker" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "replicator.json"
METRIC = re.compile(r"\breplicator_[a-z0-9_]+")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian's prometheus package; scripts/setup.sh)")
    return found


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_the_rules_and_the_prometheus_config_pass_promtool() -> None:
    for args in (("check", "rules", str(RULES)), ("check", "config", str(CONFIG))):
        checked = subprocess.run(
            [promtool(), *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_rules_are_the_operations_guides_alerts() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    alerting = guide.split("## Alerting", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|") for line in alerting.splitlines() if line.startswith("| ")]
    documented = {m for row in rows[1:] for m in METRIC.findall(row[2])}  # the expressions
    assert documented == {m for e in rule_expressions() for m in METRIC.findall(e)}


def exported(port: int) -> set[str]:
    """Every metric name an endpoint serves (a counter's with ``_total``), samples or not."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        names.update(sample.name for sample in family.samples)
    return names


def test_every_metric_the_rules_and_the_dashboard_name_is_exported(
    env: dict[str, str], moto_url: str, start_worker: Any, start_producer: Any, tmp_path: Path
) -> None:
    create_table(moto_url, "primary", stream="KEYS_ONLY")
    create_table(moto_url, "replica")
    primary, replica = f"{moto_url}/primary", f"{moto_url}/replica"
    ports = {"worker": free_port(), "producer": free_port(), "verifier": free_port()}
    start_worker(concurrency=2, extra_env={"REPLICATOR_METRICS_PORT": str(ports["worker"])})
    start_producer(
        "--primary", primary, "--replica", replica, "--metrics-port", str(ports["producer"])
    )
    ddb = client(moto_url)
    for i in range(10):
        ddb.put_item(TableName="primary", Item={"id": {"S": f"k{i}"}})
    wait_until(lambda: len(scan_all(moto_url, "replica")) == 10, 60, "replicated")
    command = [REPLICATOR, "verify", primary, replica, "--every", "1s"]
    command += ["--metrics-port", str(ports["verifier"])]
    verifier = start_command(command, env, tmp_path, "verifier")
    try:
        wait_until(lambda: '"pass": 1' in verifier.output(), 60, "a verify pass")
        served = set().union(*(exported(port) for port in ports.values()))
    finally:
        verifier.terminate()
    named = {m for e in rule_expressions() + dashboard_expressions() for m in METRIC.findall(e)}
    assert named - served == set()
    assert len(named) >= 20  # the rules and the dashboard cover every process's families
