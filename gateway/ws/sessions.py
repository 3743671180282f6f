"""Open streams follow their tokens and sessions: closed with 4401 within moments of the session's end, and
with 4440 when the token expires without a fresh one (`TokenExpiry`).

Tokens are checked at `gateway.auth.live_sessions.authenticate_token` when a connection opens, re-authenticates
or subscribes. While it stays open, `SessionWatch` ends it when its session does: at once on a revocation
event (Redis pub/sub `{prefix}auth:revoked`, sent by `live_sessions.revoke` after logout, erasure, a role
change, a refresh-token replay or a tenant deletion) and, as a safety net for events missed while Redis
was unreachable, by checking every open connection's session again each `ws_session_recheck_s` (and at
once after the listener reconnects).
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable

from websockets.exceptions import ConnectionClosed

from cluster.logs import get_logger
from cluster.settings import Settings
from domain.stream_protocol import CLOSE_TOKEN_EXPIRED, CLOSE_UNAUTHORIZED
from gateway.auth.live_sessions import ended_sessions, revocation_channel
from gateway.auth.tokens import Claims
from gateway.ws import metrics as m
from gateway.ws.protocol import dumps, error_obj

log = get_logger("ws.sessions")


class SessionWatch:
    """The claims each open connection runs on, and the two ways their sessions' end reaches it."""

    def __init__(self, settings: Settings, redis: Any, on_ended: Callable[[Any, Claims], None]):
        self.settings, self.redis, self.on_ended = settings, redis, on_ended
        self.claims: dict[Any, Claims] = {}  # client -> the claims it was (re)authenticated with

    def track(self, client: Any, claims: Claims) -> None:
        self.claims[client] = claims

    def forget(self, client: Any) -> None:
        self.claims.pop(client, None)

    def _end(self, sids: set[str]) -> int:
        ended = [(c, cl) for c, cl in self.claims.items() if cl.extra.get("sid") in sids]
        for client, claims in ended:
            self.forget(client)
            self.on_ended(client, claims)
        return len(ended)

    async def recheck(self) -> int:
        """Check every open connection's session once; end those that no longer hold."""
        if not self.claims:
            return 0
        return self._end(await ended_sessions(self.redis, self.settings, list(self.claims.values())))

    async def listen(self) -> None:
        """Follow the revocation channel forever; on a lost connection, resubscribe with backoff and
        recheck everyone (events sent meanwhile were missed)."""
        backoff = 0.5
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(revocation_channel(self.settings))
                await self.recheck()
                backoff = 0.5
                async for msg in pubsub.listen():
                    try:
                        sids = {str(s) for s in json.loads(msg["data"])}
                    except (ValueError, TypeError):
                        continue
                    self._end(sids)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("revocation listener lost Redis; resubscribing", extra={"error": str(exc)[:200]})
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def recheck_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ws_session_recheck_s)
            try:
                await self.recheck()
            except Exception as exc:
                log.warning("session recheck failed", extra={"error": str(exc)[:200]})


async def close_ended(conn: Any) -> None:
    """Tell the client why (`session_ended`), then close with 4401 (final: log in again)."""
    try:
        await conn.send(dumps(error_obj("session_ended", "the session of this connection ended; log in again")),
                        text=True)
        await asyncio.wait_for(conn.close(CLOSE_UNAUTHORIZED, "session ended"), 5)
    except Exception:
        pass
    finally:
        if conn.transport is not None and not conn.transport.is_closing():
            conn.transport.abort()


class TokenExpiry:
    """Closes a connection when its token expires (4440), unless a fresh `auth` message moved the deadline:
    a long-lived stream is never more trusted than the token that opened it."""

    def __init__(self, gateway: Any, client: Any, claims: Claims):
        self.gateway, self.client = gateway, client
        self.claims = claims
        self.handle: asyncio.TimerHandle | None = None
        self.reset(claims.exp)

    def reset(self, exp: int) -> None:
        self.cancel()
        loop = asyncio.get_running_loop()
        self.handle = loop.call_at(loop.time() + max(0.0, exp - time.time()), self._fire)

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def _fire(self) -> None:
        self.handle = None
        asyncio.get_running_loop().create_task(self._close())

    async def _close(self) -> None:
        conn = self.client.conn
        m.WS_TOKEN_EXPIRED.inc()
        self.gateway._event(conn, "ws.disconnect", "expired", self.claims, reason="token_expired")
        try:
            await conn.send(dumps(error_obj("token_expired", "the connection's token expired; reconnect with a "
                                            "fresh token, or send {type: auth, token} before it expires")),
                            text=True)
        except ConnectionClosed:
            return
        await conn.close(CLOSE_TOKEN_EXPIRED, "token expired")
