"""Prometheus metrics shared by every process of the system.

Each Serve replica and actor is its own process; with `PROMETHEUS_MULTIPROC_DIR` set (by `metrics_env()`
in every runtime_env) they all write to one directory per machine, and `/metrics` on a replica renders the
sum over the processes of its node. On a cluster each node is its own scrape target (`cluster.node_metrics`).

The head hands every process the same absolute folder; on a node where it does not exist yet it is created,
and where it cannot be, the process keeps its metrics in memory instead of failing the request that first
touches a metric (prometheus_client opens a file per process and metric on first use).
"""
from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import REGISTRY, multiprocess, values

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def ensure_metrics_dir() -> str | None:
    """Make this process's multiprocess folder exist, or fall back to in-memory metrics; returns the folder
    in use (None: in memory). Every module declaring metrics calls it before declaring them."""
    d = os.environ.get(MULTIPROC_ENV)
    if not d:
        return None
    try:
        Path(d).mkdir(parents=True, exist_ok=True)
        probe = Path(d) / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
        return d
    except OSError:
        del os.environ[MULTIPROC_ENV]
        values.ValueClass = values.get_value_class()  # in-memory values for every metric created from now on
        return None


ensure_metrics_dir()
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "gpubroker_http_requests_total", "HTTP requests by route template, method and status", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "gpubroker_http_request_duration_seconds", "HTTP request latency by route template", ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
HTTP_ERRORS = Counter(
    "gpubroker_http_errors_total", "HTTP responses with status >= 400 by route and error code", ["route", "code"]
)
RATE_LIMIT_DECISIONS = Counter(
    "gpubroker_ratelimit_decisions_total", "rate-limit decisions at the ingress (admitted or limited with 429)", ["outcome"]
)
HTTP_IN_FLIGHT = Gauge(
    "gpubroker_http_in_flight_requests", "requests being served", multiprocess_mode="livesum"
)


def metrics_dir(state_dir: Path) -> Path:
    """The node's multiprocess metrics folder under the state dir."""
    return (Path(state_dir) / "metrics").resolve()


def metrics_env(state_dir: Path) -> dict[str, str]:
    """The runtime_env variables that make a process write into its node's metrics directory."""
    d = metrics_dir(state_dir)
    d.mkdir(parents=True, exist_ok=True)
    return {MULTIPROC_ENV: str(d)}


def reset_metrics_dir(state_dir: Path) -> None:
    d = Path(state_dir) / "metrics"
    if d.is_dir():
        for f in d.glob("*.db"):
            f.unlink(missing_ok=True)


def render() -> tuple[bytes, str]:
    """This node's metrics (every process of ours on it), or this process's without a multiprocess folder."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
