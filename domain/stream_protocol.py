"""Close codes of the live stream's protocol (gateway/ws/PROTOCOL.md), shared by the server
(`gateway.ws`) and the client (`gpubroker.stream`). 4000-4999 are the application's."""
from __future__ import annotations

CLOSE_UNAUTHORIZED = 4401  # missing, invalid or expired token
CLOSE_FORBIDDEN = 4403  # token valid but its tenant is unknown or deleted
CLOSE_AUTH_TIMEOUT = 4408  # no auth message within ws_auth_timeout_s
CLOSE_TOO_MANY = 4429  # tenant ws_limit reached
CLOSE_UNAVAILABLE = 1013  # try again later (a dependency is down)
CLOSE_TOKEN_EXPIRED = 4440  # the connection's token expired and no fresh one was sent: reconnect with a new token
CLOSE_KEEPALIVE = 1011  # the client sent nothing back (not even a pong) for a whole ping interval
# A client refused with one of these must not retry: a new token or tenant is needed.
FATAL_CLOSE_CODES = frozenset({CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN})
