"""Prometheus metrics of the WebSocket gateway (multiprocess: every gateway process adds to the sums).

Hot-path counts are accumulated per flush and added once, not once per client.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

WS_CONNECTED = Gauge("gpubroker_ws_connected_clients", "authenticated WebSocket clients connected",
                     multiprocess_mode="livesum")
WS_UPDATES_IN = Counter("gpubroker_ws_updates_received_total", "price updates received from JetStream")
WS_MESSAGES_SENT = Counter("gpubroker_ws_messages_sent_total", "price updates handed to clients (one per client)")
WS_FRAMES_SENT = Counter("gpubroker_ws_frames_sent_total", "price frames handed to clients (batches)")
WS_DROPPED = Counter("gpubroker_ws_dropped_total", "price updates dropped for slow clients (skipped to newest)")
WS_LAGGED = Counter("gpubroker_ws_lagged_total", "`lagged` notices sent to slow clients")
WS_REFUSED = Counter("gpubroker_ws_refused_total", "connections refused", ["reason"])
WS_TOKEN_EXPIRED = Counter("gpubroker_ws_token_expired_total",
                           "connections closed because their token expired without a fresh one (4440)")
WS_SESSION_ENDED = Counter("gpubroker_ws_session_ended_total",
                           "connections closed (4401) because their session ended (logout, erasure, role change)")
WS_KEEPALIVE_TIMEOUTS = Counter("gpubroker_ws_keepalive_timeouts_total",
                                "connections closed (1011) for sending nothing back for a whole ping interval")
WS_REAUTH = Counter("gpubroker_ws_reauth_total", "fresh tokens sent on open connections", ["outcome"])
WS_REPLAYED = Counter("gpubroker_ws_replayed_total", "updates replayed to resuming clients", ["source"])
WS_PROTOCOL_ERRORS = Counter("gpubroker_ws_protocol_errors_total", "malformed client messages answered with an error")
WS_LAG = Histogram("gpubroker_ws_lag_seconds", "update received from NATS -> frame written, oldest update per flush",
                   buckets=_LAG_BUCKETS)
WS_INGEST_LAG = Histogram("gpubroker_ws_ingest_lag_seconds", "update `ts` (ingestion) -> received by the gateway",
                          buckets=_LAG_BUCKETS)
