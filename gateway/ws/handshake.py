"""Opening a connection: the credential (header before the upgrade, or a first `auth` message), checked at
the one place HTTP also uses (`gateway.auth.live_sessions.authenticate_token`), and the security log line
every connection event leaves (SEC-LOG-REQ-1: who, what, outcome, source; no PII).
"""
from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any, Awaitable, Callable

from websockets.asyncio.server import ServerConnection

from cluster.logs import get_logger
from cluster.settings import Settings
from domain.stream_protocol import CLOSE_AUTH_TIMEOUT, CLOSE_UNAUTHORIZED, CLOSE_UNAVAILABLE
from gateway.auth.live_sessions import SessionEnded, authenticate_token
from gateway.auth.tokens import Claims, TokenError, TokenService
from gateway.http.client_address import real_client
from gateway.ws import metrics as m
from gateway.ws.protocol import AuthMsg, ProtocolError, parse_client_message

log = get_logger("ws")


def security_event(settings: Settings, conn: ServerConnection, event: str, outcome: str, claims: Any = None,
                   reason: str | None = None) -> None:
    """One security log line per connection event: who, what, outcome, source; no PII."""
    try:
        headers = conn.request.headers if conn.request is not None else None
        ip = real_client(conn.remote_address[0] if conn.remote_address else None,
                         headers.get_all("X-Forwarded-For") if headers else (), settings.trusted_proxies)
        ua = headers.get("User-Agent") if headers else None
    except Exception:  # a connection torn down mid-handshake
        ip, ua = None, None
    log.info(event, extra={"event": event, "outcome": outcome, "reason": reason, "source_ip": ip,
                           "user_agent": (ua or "")[:200] or None, "target": "ws:prices",
                           "user_id": getattr(claims, "sub", None), "tenant_id": getattr(claims, "tenant_id", None)})


class Handshake:
    """Authenticates a new connection; `authenticate` answers its Claims, or None once it closed it."""

    def __init__(self, settings: Settings, tokens: TokenService, redis: Any,
                 get_pg: Callable[[], Awaitable[Any]]):
        self.settings, self.tokens, self.redis, self.get_pg = settings, tokens, redis, get_pg

    async def check(self, token: str) -> Claims:
        """A bearer credential (access token or API key) whose session is live; TokenError otherwise."""
        return await authenticate_token(self.tokens, self.redis, self.settings, token, get_pg=self.get_pg)

    async def process_request(self, conn: ServerConnection, request: Any) -> Any:
        """A token in the Authorization header is checked before the upgrade: a bad one or an ended session
        gets HTTP 401, an unreachable session store 503."""
        conn.gpb_claims = None  # type: ignore[attr-defined]
        header = request.headers.get("Authorization")
        if header is None:
            return None  # expect an `auth` message first
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer" or not token:
                raise TokenError("expected `Authorization: Bearer <token>`")
            conn.gpb_claims = await self.check(token.strip())  # type: ignore[attr-defined]
        except TokenError as exc:
            reason = "session" if isinstance(exc, SessionEnded) else "token"
            m.WS_REFUSED.labels(reason).inc()
            security_event(self.settings, conn, "ws.connect", "fail", reason=reason)
            return conn.respond(HTTPStatus.UNAUTHORIZED, "invalid or expired token, or session ended\n")
        except Exception as exc:
            log.warning("ws session check failed", extra={"error": str(exc)[:200]})
            m.WS_REFUSED.labels("unavailable").inc()
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "try again later\n")
        return None

    async def authenticate(self, conn: ServerConnection) -> Claims | None:
        claims = getattr(conn, "gpb_claims", None)
        if claims is not None:
            return claims
        try:
            raw = await asyncio.wait_for(conn.recv(), timeout=self.settings.ws_auth_timeout_s)
        except asyncio.TimeoutError:
            m.WS_REFUSED.labels("auth_timeout").inc()
            security_event(self.settings, conn, "ws.connect", "fail", reason="auth_timeout")
            await conn.close(CLOSE_AUTH_TIMEOUT, "no auth message")
            return None
        try:
            msg = parse_client_message(raw)
            if not isinstance(msg, AuthMsg):
                raise ProtocolError("unauthenticated", "first message must be {type: auth, token}")
            return await self.check(msg.token)
        except (ProtocolError, TokenError) as exc:
            reason = "session" if isinstance(exc, SessionEnded) else "token"
            m.WS_REFUSED.labels(reason).inc()
            security_event(self.settings, conn, "ws.connect", "fail", reason=reason)
            await conn.close(CLOSE_UNAUTHORIZED, "session ended" if reason == "session" else "invalid or missing token")
            return None
        except Exception as exc:  # the session store is unreachable
            log.warning("ws session check failed", extra={"error": str(exc)[:200]})
            m.WS_REFUSED.labels("unavailable").inc()
            await conn.close(CLOSE_UNAVAILABLE, "try again later")
            return None
