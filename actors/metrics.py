"""Prometheus metrics of ingestion (multiprocess mode: the actors write into the shared directory)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from cluster.ray_env import ensure_metrics_dir

ensure_metrics_dir()  # a node without the head's metrics folder: create it (or keep metrics in memory)

RECORDS = Counter("gpubroker_ingest_records_total", "records through the pipeline by provider and outcome",
                  ["provider", "outcome"])
REJECTED = Counter("gpubroker_ingest_rejected_total", "rejected records by provider and reason", ["provider", "reason"])
PRICE_EVENTS = Counter("gpubroker_ingest_price_events_total", "price deltas (history rows = outbox rows)", ["provider"])
SYNC_SECONDS = Histogram("gpubroker_ingest_sync_seconds", "duration of one provider's ingest", ["provider"],
                         buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))
# Freshness per provider for dashboards and the staleness alert (time() - this); "max" keeps the newest
# across processes, also after an adapter actor restarted.
BOOKING_TRANSITIONS = Counter("gpubroker_booking_transitions_total", "booking state transitions applied, by new state",
                              ["state"])
BOOKINGS_LIVE = Gauge("gpubroker_bookings_live", "live bookings held by the booking hosts, by state", ["state"],
                      multiprocess_mode="livesum")
OUTBOX_AGE = Gauge("gpubroker_outbox_oldest_unpublished_age_seconds",
                   "age of the oldest outbox event not yet on JetStream (0: none waiting)", multiprocess_mode="livemax")
LAST_SYNC = Gauge("gpubroker_ingest_last_sync_timestamp_seconds", "end of the provider's last ingested sync (unix time)",
                  ["provider"], multiprocess_mode="max")


def observe(stats) -> None:
    """Record one SyncStats."""
    p = stats.provider
    for outcome in ("inserted", "updated", "unchanged", "marked_down"):
        n = getattr(stats, outcome)
        if n:
            RECORDS.labels(p, outcome).inc(n)
    for reason, n in stats.rejected.items():
        REJECTED.labels(p, reason).inc(n)
    if stats.deltas:
        PRICE_EVENTS.labels(p).inc(stats.deltas)
    SYNC_SECONDS.labels(p).observe(stats.seconds)
    LAST_SYNC.labels(p).set_to_current_time()
