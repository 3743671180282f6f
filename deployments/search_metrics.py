"""Prometheus metrics of marketplace search (multiprocess-safe; summed over replicas by /metrics)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from cluster.ray_env import ensure_metrics_dir

ensure_metrics_dir()  # a node without the head's metrics folder: create it (or keep metrics in memory)

CACHE_HITS = Counter("gpubroker_search_cache_hits_total",
                     "search pages served from cache, by tier (local: in-process, redis: shared)", ["tier"])
CACHE_MISSES = Counter("gpubroker_search_cache_misses_total", "search pages computed from the index")
CACHE_HIT_RATIO = Gauge("gpubroker_search_cache_hit_ratio",
                        "hits / (hits + misses) of the most recently reporting process since it started",
                        multiprocess_mode="mostrecent")
CACHE_ERRORS = Counter("gpubroker_search_cache_errors_total", "Redis cache operations that failed", ["op"])
INDEX_OFFERS = Gauge("gpubroker_search_index_offers", "offers in the in-memory search index",
                     multiprocess_mode="livemax")
INDEX_RELOADS = Counter("gpubroker_search_index_reloads_total", "index reloads by kind", ["kind"])
DELTAS = Counter("gpubroker_search_price_deltas_total", "NATS price deltas applied to the index", ["outcome"])
QUERY_SECONDS = Histogram("gpubroker_search_query_seconds", "time to filter, sort and render one uncached page",
                          buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1))


class HitRatio:
    """Per-process hit ratio, published to the gauge with every event (a few µs)."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0

    def hit(self, tier: str) -> None:
        CACHE_HITS.labels(tier).inc()
        self.hits += 1
        CACHE_HIT_RATIO.set(self.ratio)

    def miss(self) -> None:
        CACHE_MISSES.inc()
        self.misses += 1
        CACHE_HIT_RATIO.set(self.ratio)

    @property
    def ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
