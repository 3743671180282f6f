"""The edge of the system, in three rooms:

- `gateway.http`: what every HTTP request passes through before a route runs (trace context, the JSON
  error format, request-size limits, the per-tenant rate limit, the real client address, metrics, the
  OpenAPI document);
- `gateway.auth`: who the caller is and what it may do (access tokens, login sessions and refresh
  tokens, TOTP, API keys, failed-login throttling, `require(P.X)` for routes);
- `gateway.ws`: the WebSocket price and booking stream (server, protocol, filters, fan-out); its
  Python client is the SDK's `gpubroker.stream`.

Storage they need is in `cluster.repositories`; pure rules in `domain`.
"""
