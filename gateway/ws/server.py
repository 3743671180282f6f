"""The live price stream: a WebSocket gateway fed by JetStream `prices.>` (protocol: gateway/ws/PROTOCOL.md).

`PriceGateway` is one process's server. It follows the PRICES stream with an ordered consumer that it
re-creates from its last stream sequence after a NATS outage, so nothing JetStream kept is skipped;
it authenticates clients (JWT in the Authorization header or a first `auth` message) at the check HTTP
shares (`gateway.auth.live_sessions.authenticate_token`), closes streams whose session ends (`SessionWatch`),
enforces the tenant `ws_limit` across processes through Redis, and hands updates to `Fanout`. Several processes
can share one port (`reuse_port=True`): each follows the stream itself.
"""
from __future__ import annotations

import asyncio
import json
import socket
import time
from datetime import datetime, timezone
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from cluster.connections import PostgresPool, redis_client
from cluster.logs import get_logger
from cluster.repositories import directory
from cluster.repositories.directory import TenantPlan
from cluster.settings import Settings
from domain.stream_protocol import CLOSE_FORBIDDEN, CLOSE_TOO_MANY, CLOSE_UNAVAILABLE
from gateway.auth.live_sessions import SessionEnded, check_session
from gateway.auth.tokens import TokenError, TokenService
from gateway.ws import metrics as m
from gateway.ws.bookings import BookingFeed
from gateway.ws.chat import ChatEvents, ChatRelay
from gateway.ws.fanout import Client, Fanout
from gateway.ws.filters import UpdateView
from gateway.ws.handshake import Handshake, security_event
from gateway.ws.keepalive import KeepaliveConnection, keepalive
from gateway.ws.limits import ConnectionLimiter, TenantUnknown
from gateway.ws.price_feed import PriceFeed
from gateway.ws.protocol import (PROTOCOL_VERSION, AuthMsg, ChatMsg, PingMsg, ProtocolError, SubscribeMsg,
                                 UnsubscribeMsg, control_frame, dumps, error_obj, parse_client_message, update_json)
from gateway.ws.replay import Replayer, ts_epoch
from gateway.ws.sessions import SessionWatch, TokenExpiry, close_ended

log = get_logger("ws")


class PriceGateway:
    """One WebSocket server process. `await start()`, then `await stop()`."""

    def __init__(self, settings: Settings, *, reuse_port: bool = False, port: int | None = None,
                 chat: ChatEvents | None = None):
        self.settings = settings
        self.chat = ChatRelay(chat)  # `chat` messages; default: the Chat deployment of the Serve app
        self.reuse_port = reuse_port
        self.port = port if port is not None else settings.ws_port
        self.tokens = TokenService(settings)
        self.fanout = Fanout(settings.ws_batch_ms / 1000.0, on_flush=self._on_flush)
        self.feed = PriceFeed(settings, self._on_update)
        self.replayer = Replayer(settings, self.feed)
        self.bookings = BookingFeed(settings)
        self.server: Server | None = None
        self.limiter: ConnectionLimiter | None = None
        self.sessions: SessionWatch | None = None
        self.handshake: Handshake | None = None
        self._redis: Any = None
        self._pg: PostgresPool | None = None
        self._tasks: list[asyncio.Task] = []
        self.stats_counts = {"updates": 0, "frames": 0, "deliveries": 0, "dropped": 0, "bad_updates": 0}
        self._lagged_seen = 0

    # lifecycle ----------------------------------------------------------------------------------------
    async def start(self) -> "PriceGateway":
        s = self.settings
        # A bounded, blocking pool: a burst of (dis)connects waits for a connection instead of failing.
        self._redis = redis_client(s, op_timeout_s=5, max_connections=32, blocking=True)
        # Opened on first use and min_size=0: the gateway starts (and heals) while PostgreSQL is down.
        self._pg = PostgresPool(s, min_size=0, max_size=2)
        self.limiter = ConnectionLimiter(s, self._redis, self._tenant_plan)
        self.sessions = SessionWatch(s, self._redis, self._session_ended)
        self.handshake = Handshake(s, self.tokens, self._redis, self._get_pg)
        try:
            await self.limiter.heartbeat()
        except Exception as exc:  # Redis down: the housekeeping loop marks us alive once it is back
            log.warning("ws gateway started without redis", extra={"error": str(exc)[:200]})
        await self.feed.start()
        await self.bookings.start()
        self.server = await serve(
            self._handler, s.ws_host, self.port, process_request=self.handshake.process_request, compression=None,
            max_size=65536, max_queue=16, ping_interval=None, reuse_port=self.reuse_port, backlog=4096,
            server_header=None, create_connection=KeepaliveConnection,
        )
        if self.port == 0:
            self.port = next(iter(self.server.sockets)).getsockname()[1]
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._heartbeats()), loop.create_task(self._housekeeping()),
                       loop.create_task(self.sessions.listen()), loop.create_task(self.sessions.recheck_forever())]
        if s.ws_ping_interval_s > 0:
            self._tasks.append(loop.create_task(keepalive(self.fanout, s.ws_ping_interval_s, self._keepalive_timeout)))
        log.info("ws gateway listening", extra={"host": s.ws_host, "port": self.port})
        return self

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        await self.feed.stop()
        await self.bookings.stop()
        if self.limiter is not None:
            try:
                await self.limiter.close()
            except Exception:
                pass
        if self._redis is not None:
            await self._redis.aclose(close_connection_pool=True)
        if self._pg is not None:
            await self._pg.close()

    async def _get_pg(self) -> Any:
        return await self._pg.get()  # API keys not cached in Redis are looked up in PostgreSQL

    async def _tenant_plan(self, tenant_id: str) -> TenantPlan | None:
        return await directory.tenant_plan(await self._pg.get(), tenant_id)

    def stats(self) -> dict[str, Any]:
        return {"port": self.port, "clients": len(self.fanout.clients), "groups": len(self.fanout.groups),
                "last_seq": self.feed.last_seq, "lagged": self.fanout.lagged_events, **self.stats_counts}

    # NATS -> clients ----------------------------------------------------------------------------------
    def _on_update(self, data: bytes, seq: int) -> None:
        rx = time.monotonic()
        try:
            d = json.loads(data)
            if not isinstance(d, dict):
                raise ValueError("not an object")
        except ValueError:
            self.stats_counts["bad_updates"] += 1
            return
        view = UpdateView(d)
        payload = update_json(d, seq)
        ts = ts_epoch(d.get("ts")) or time.time()
        self.replayer.remember(seq, view, payload, ts)
        self.stats_counts["updates"] += 1
        m.WS_UPDATES_IN.inc()
        m.WS_INGEST_LAG.observe(max(0.0, time.time() - ts))
        self.fanout.publish(view, seq, payload, rx)

    def _on_flush(self, frames: int, deliveries: int, dropped: int, oldest_rx: float) -> None:
        c = self.stats_counts
        c["frames"] += frames
        c["deliveries"] += deliveries
        c["dropped"] += dropped
        m.WS_FRAMES_SENT.inc(frames)
        m.WS_MESSAGES_SENT.inc(deliveries)
        if dropped:
            m.WS_DROPPED.inc(dropped)
        m.WS_LAG.observe(time.monotonic() - oldest_rx)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ws_heartbeat_s)
            frame = control_frame({"type": "heartbeat", "ts": datetime.now(timezone.utc).isoformat(),
                                   "seq": self.feed.last_seq})
            self.fanout.broadcast(frame)

    def _keepalive_timeout(self, conn: ServerConnection) -> None:
        self._event(conn, "ws.keepalive_timeout", "fail", reason="no pong")

    def _session_ended(self, client: Client, claims) -> None:
        """Close a connection whose session ended (logout, erasure, role change...): 4401, final."""
        m.WS_SESSION_ENDED.inc()
        self._event(client.conn, "ws.disconnect", "revoked", claims, reason="session_ended")
        asyncio.get_running_loop().create_task(close_ended(client.conn))

    async def _housekeeping(self) -> None:
        while True:
            try:
                await self.limiter.heartbeat()
                await self.limiter.sync()
            except Exception as exc:
                log.warning("redis heartbeat failed", extra={"error": str(exc)[:200]})
            lagged = self.fanout.lagged_events
            if lagged > self._lagged_seen:
                m.WS_LAGGED.inc(lagged - self._lagged_seen)
                self._lagged_seen = lagged
            await asyncio.sleep(min(10.0, ConnectionLimiter.ALIVE_TTL_S / 3))

    # connections --------------------------------------------------------------------------------------
    def _event(self, conn: ServerConnection, event: str, outcome: str, claims=None, reason: str | None = None) -> None:
        security_event(self.settings, conn, event, outcome, claims, reason)

    async def _handler(self, conn: ServerConnection) -> None:
        claims = await self.handshake.authenticate(conn)
        if claims is None:
            return
        try:
            count = await self.limiter.acquire(claims.tenant_id)
        except TenantUnknown:
            m.WS_REFUSED.labels("tenant").inc()
            self._event(conn, "ws.connect", "fail", claims, "unknown_tenant")
            await conn.close(CLOSE_FORBIDDEN, "unknown tenant")
            return
        except Exception as exc:  # PostgreSQL or Redis down: tell the client to retry later
            log.warning("ws limit check failed", extra={"error": str(exc)[:200]})
            m.WS_REFUSED.labels("unavailable").inc()
            self._event(conn, "ws.connect", "fail", claims, "unavailable")
            await conn.close(CLOSE_UNAVAILABLE, "try again later")
            return
        if count is None:
            m.WS_REFUSED.labels("limit").inc()
            self._event(conn, "ws.connect", "fail", claims, "tenant_limit")
            await conn.close(CLOSE_TOO_MANY, "tenant connection limit reached")
            return
        if self.settings.ws_send_buffer:
            # Otherwise loopback autotuning lets megabytes (seconds of updates) pile up in the kernel before the
            # transport pauses and the bounded queue / `lagged` logic can act.
            sock = conn.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.settings.ws_send_buffer)
        client = Client(conn, claims.tenant_id, claims.sub, self.settings.ws_queue_max, self.fanout)
        self.fanout.add(client)
        self.sessions.track(client, claims)
        m.WS_CONNECTED.inc()
        self._event(conn, "ws.connect", "success", claims)
        expiry = TokenExpiry(self, client, claims)
        try:
            await conn.send(dumps({"type": "welcome", "version": PROTOCOL_VERSION, "seq": self.feed.last_seq,
                                   "heartbeat_s": self.settings.ws_heartbeat_s,
                                   "max_subscriptions": self.settings.ws_max_subscriptions,
                                   "token_expires_at": claims.exp}), text=True)
            async for raw in conn:
                await self._on_client_message(client, raw, expiry)
        except ConnectionClosed:
            pass
        finally:
            expiry.cancel()
            self.chat.close(conn)
            self.sessions.forget(client)
            self.fanout.remove(client)
            self.bookings.remove(client)
            m.WS_CONNECTED.dec()
            self._event(conn, "ws.disconnect", "success", claims)
            try:
                await self.limiter.release(claims.tenant_id)
            except Exception as exc:
                log.warning("ws slot release failed (healed by the next sync)",
                            extra={"error": f"{type(exc).__name__}: {exc}"[:200]})

    async def _on_client_message(self, client: Client, raw: str | bytes, expiry: "TokenExpiry | None" = None) -> None:
        conn = client.conn
        try:
            msg = parse_client_message(raw)
            if isinstance(msg, AuthMsg) and expiry is not None:
                await self._reauthenticate(client, msg, expiry)
                return
            if isinstance(msg, SubscribeMsg):
                await self._subscribe(client, msg)
            elif isinstance(msg, UnsubscribeMsg) and self.bookings.remove(client, msg.id):
                await conn.send(dumps({"type": "unsubscribed", "id": msg.id}), text=True)
            elif isinstance(msg, UnsubscribeMsg):
                if msg.id not in client.subs:
                    raise ProtocolError("unknown_subscription", f"no subscription {msg.id!r}")
                subs = dict(client.subs)
                del subs[msg.id]
                self.fanout.set_subscriptions(client, subs)
                await conn.send(dumps({"type": "unsubscribed", "id": msg.id}), text=True)
            elif isinstance(msg, PingMsg):
                await conn.send(dumps({"type": "pong", "nonce": msg.nonce, "seq": self.feed.last_seq}), text=True)
            elif isinstance(msg, ChatMsg):
                self.chat.start(conn, msg)
            else:
                raise ProtocolError("unexpected_message", "message type not accepted here")
        except ProtocolError as exc:
            m.WS_PROTOCOL_ERRORS.inc()
            await conn.send(dumps(error_obj(exc.code, exc.message, exc.details)), text=True)

    async def _reauthenticate(self, client: Client, msg: AuthMsg, expiry: "TokenExpiry") -> None:
        """A fresh token on an open connection (before the old one expires) keeps the stream going. It must
        name the same user and tenant; a bad one is an error frame and the connection keeps its old token."""
        try:
            claims = await self.handshake.check(msg.token)
        except TokenError as exc:
            self._event(client.conn, "ws.reauth", "fail", reason="token")
            m.WS_REAUTH.labels("invalid").inc()
            raise ProtocolError("invalid_token", str(exc) or "invalid or expired token") from None
        except Exception:
            raise ProtocolError("unavailable", "the session store is unreachable; try again") from None
        if claims.tenant_id != client.tenant_id or claims.sub != client.subject:
            self._event(client.conn, "ws.reauth", "fail", claims, reason="token_mismatch")
            m.WS_REAUTH.labels("mismatch").inc()
            raise ProtocolError("token_mismatch", "a fresh token must be for the connection's user and tenant")
        expiry.reset(claims.exp)
        self.sessions.track(client, claims)
        self._event(client.conn, "ws.reauth", "success", claims)
        m.WS_REAUTH.labels("ok").inc()
        await client.conn.send(dumps({"type": "authenticated", "token_expires_at": claims.exp}), text=True)

    async def _subscribe(self, client: Client, msg: SubscribeMsg) -> None:
        claims = self.sessions.claims.get(client)
        if claims is None:
            return  # its session ended: the connection is being closed
        try:
            await check_session(self._redis, self.settings, claims)
        except SessionEnded:
            self.sessions.forget(client)
            self._session_ended(client, claims)
            return
        except Exception as exc:  # an authenticated connection keeps working; the session watch rechecks it
            log.warning("ws subscribe: session store unreachable", extra={"error": str(exc)[:200]})
        if msg.id not in client.subs and len(client.subs) + self.bookings.count(client) >= self.settings.ws_max_subscriptions:
            raise ProtocolError("too_many_subscriptions", f"at most {self.settings.ws_max_subscriptions}")
        if msg.stream == "bookings":
            await self.bookings.subscribe(client, msg)
            return
        compiled = msg.filter.compiled()
        subs = dict(client.subs)
        subs[msg.id] = compiled
        resume = msg.resume_from_seq
        if resume is not None:
            client.replaying = True  # live frames queue up behind the replay
        try:
            self.fanout.set_subscriptions(client, subs)
            await client.conn.send(dumps({"type": "subscribed", "id": msg.id, "seq": self.feed.last_seq,
                                          "filter": msg.filter.model_dump(mode="json", exclude_none=True)}),
                                   text=True)
            if resume is not None:
                await self.replayer.replay(client, msg.id, compiled, resume)
        finally:
            if resume is not None:
                client.end_replay()

async def run_forever(settings: Settings, reuse_port: bool = False) -> None:
    gw = await PriceGateway(settings, reuse_port=reuse_port).start()
    try:
        await asyncio.Event().wait()
    finally:
        await gw.stop()


if __name__ == "__main__":  # a standalone gateway process (benchmarks; Ray runs it as an actor otherwise)
    import argparse

    from cluster.settings import load_settings

    ap = argparse.ArgumentParser()
    ap.add_argument("--reuse-port", action="store_true")
    a = ap.parse_args()
    from cluster.logs import configure_logging

    _settings = load_settings()
    configure_logging(_settings.log_level)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run_forever(_settings, reuse_port=a.reuse_port))
