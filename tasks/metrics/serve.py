"""Serving Prometheus metrics: a collector on its own port, from a daemon thread.

Two processes serve metrics, each with its own collector: workers (``tasks.metrics.cluster``,
the cluster-wide numbers Redis holds) and the producer (``producer.metrics``). Names follow
Prometheus conventions (``_total`` counters, ``_seconds`` units) and are listed in the README
("Running it as a service").
"""

from __future__ import annotations

from prometheus_client import start_http_server
from prometheus_client.registry import Collector, CollectorRegistry

from tasks.core.errors import ConfigurationError


class MetricsPortError(ConfigurationError):
    """The metrics port cannot be bound."""


def serve(port: int, collector: Collector, address: str = "0.0.0.0") -> CollectorRegistry:
    """Serve ``collector`` on http://ADDRESS:PORT/metrics from a daemon thread."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    try:
        start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        raise MetricsPortError(
            f"cannot serve metrics on port {port}: {exc.strerror or exc} (is another process "
            "using it? set REPLICATOR_METRICS_PORT / --metrics-port to a free port, or 0 for none)"
        ) from exc
    return registry
