"""What a process uses, from /proc: CPU seconds so far and resident memory; and the set-up the
dynalite benchmarks share (a latency proxy, the processes' environment)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from tests.support import servers
from tests.support.faultproxy import FaultProxy, Rule


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds the processes have used so far (from /proc/PID/stat)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident memory in MiB (``VmHWM``: the peak); 0 when the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0.0
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def latency_proxy(url: str, latency_ms: float, operations: Sequence[str]) -> FaultProxy | None:
    """A started proxy in front of ``url`` that holds each of ``operations`` ``latency_ms``
    first (tables a network hop away), or None for no latency."""
    if not latency_ms:
        return None
    proxy = FaultProxy(url).start()
    for operation in operations:
        proxy.add_rule(Rule(operation, action="delay", delay=latency_ms / 1000))
    return proxy


def dynalite_env(redis_url: str, tables_url: str) -> dict[str, str]:
    """Every process's environment: placeholder credentials, us-east-1, every Redis role on
    ``redis_url``, DynamoDB at ``tables_url`` (locations ``us-east-1/TABLE``)."""
    return {
        **servers.process_env(redis_url),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_DYNAMODB": tables_url,
    }
