"""The HTTP edge: what every request passes through before (and after) a route runs.

`edge` (W3C trace context, the one JSON error format, per-route metrics, `ApiError`), `request_limits`
(request line, header and body sizes), `ratelimit` (per tenant for authenticated calls, per client address
otherwise), `client_address` (the real client behind trusted proxies, also used by the stream),
`metrics` (the Prometheus metrics and the multiprocess directory) and `openapi` (the published document).

Not here: deciding who the caller is (`gateway.auth`; the rate limiter asks it), the routes themselves
(`deployments`), the WebSocket stream (`gateway.ws`).
"""
