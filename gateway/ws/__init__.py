"""The WebSocket stream of price changes and booking events (protocol: `PROTOCOL.md` beside this file).

`server` (the `PriceGateway` process: lifecycle, feed, housekeeping, a connection's messages and
subscriptions), `handshake` (the credential of a new connection, the security log line), `replay` (resuming from a sequence), `keepalive` (one ping sweep
for all clients), `price_feed` (the JetStream consumer), `bookings` and `chat` (the other two streams of a
connection), `fanout` (groups, batching, bounded queues), `filters` (subscription filters), `protocol`
(messages and frames), `sessions` (closing streams whose session or token ended), `limits` (per-tenant
connection limits across processes) and `metrics`.

Not here: checking a credential (`gateway.auth.live_sessions`, shared with HTTP), running the server as
Ray actors (`deployments.ws_gateway`), the protocol's close codes (`domain.stream_protocol`), the Python client
with reconnects (`gpubroker.stream`, part of the SDK).
"""
