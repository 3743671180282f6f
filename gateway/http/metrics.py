"""Prometheus metrics shared by every process of the system.

Each Serve replica and actor is its own process; with `PROMETHEUS_MULTIPROC_DIR` set (by
`cluster.ray_env.metrics_env()` in every runtime_env) they all write to one directory and `/metrics` on
any replica renders the sum across all of them.
"""
from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import REGISTRY, multiprocess

from cluster.ray_env import MULTIPROC_ENV

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


def render() -> tuple[bytes, str]:
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
