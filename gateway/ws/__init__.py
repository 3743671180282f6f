"""The WebSocket stream of price changes and booking events (protocol: `PROTOCOL.md` beside this file).

`server` (the `PriceGateway` process: lifecycle, feed, housekeeping), `connections` (the handshake, a
connection's messages, subscriptions), `replay` (resuming from a sequence), `keepalive` (one ping sweep
for all clients), `price_feed` (the JetStream consumer), `bookings` and `chat` (the other two streams of a
connection), `fanout` (groups, batching, bounded queues), `filters` (subscription filters), `protocol`
(messages and frames), `sessions` (closing streams whose session or token ended), `limits` (per-tenant
connection limits across processes), `metrics`, and `client` (a Python client with reconnects).

Not here: checking a credential (`gateway.auth.live_sessions`, shared with HTTP), running the server as
Ray actors (`actors.ws_gateway`).
"""
