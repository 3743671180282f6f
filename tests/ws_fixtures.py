"""Helpers for the WebSocket gateway tests: tenants, tokens, price updates on the real NATS."""
from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal

from cluster.messaging import subject
from domain.models import Availability, PriceUpdate


async def make_tenant(pg, ws_limit: int = 100) -> str:
    tid = uuid.uuid4()
    await pg.execute("INSERT INTO tenants (id, name, ws_limit) VALUES ($1, $2, $3)", tid, f"ws-{tid.hex[:6]}", ws_limit)
    return str(tid)


def token_for(settings, tenant_id: str, ttl_s: int | None = None, sub: str | None = None) -> str:
    """An access token with a live session in Redis, as a login makes them (the gateway checks both)."""
    import redis

    from gateway.auth.live_sessions import session_key, session_value
    from gateway.auth.tokens import TokenService

    sub, sid = sub or str(uuid.uuid4()), str(uuid.uuid4())
    r = redis.Redis.from_url(settings.redis_url)
    try:
        r.set(session_key(settings, sid), session_value(sub, tenant_id, "user"), ex=3600)
    finally:
        r.close()
    return TokenService(settings).issue(sub, "user", tenant_id, ttl_s=ttl_s, typ="access", sid=sid)


def price_update(provider: str = "runpod", gpu_type: str = "H100_80GB_SXM5", region: str = "us-east-1",
                 price: str = "2.49", old: str | None = "2.59", **kw) -> PriceUpdate:
    return PriceUpdate(offer_id=uuid.uuid4(), external_id=kw.pop("external_id", f"{provider}-{gpu_type}-{region}"),
                       provider=provider, gpu_type=gpu_type, region=region, old_price=Decimal(old) if old else None,
                       new_price=Decimal(price), availability=Availability.up, **kw)


async def publish(settings, js, upd: PriceUpdate) -> int:
    """Publish like ingestion does; returns the JetStream stream sequence."""
    ack = await js.publish(subject(settings, "prices", upd.provider, upd.gpu_type), upd.model_dump_json().encode())
    return ack.seq


async def next_update(client, timeout: float = 5.0) -> dict:
    return await asyncio.wait_for(client.updates.get(), timeout)


async def wait_for(pred, timeout: float = 5.0, step: float = 0.02):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


async def running_gateway(settings, **overrides):
    """A PriceGateway on a free port, following the stream (for module-scoped fixtures)."""
    from gateway.ws.server import PriceGateway

    g = await PriceGateway(settings.with_overrides(**overrides), port=0).start()
    await asyncio.wait_for(g.feed.connected.wait(), 10)
    return g


async def next_frame(ws, kind: str | None = None, timeout: float = 5.0) -> dict:
    """The next frame a test is about, read from a raw connection: heartbeats (which the gateway sends on its own
    schedule, and so may come before any answer) are skipped, and with `kind` every other type too."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), max(0.05, deadline - loop.time())))
        if msg.get("type") != "heartbeat" and (kind is None or msg.get("type") == kind):
            return msg
