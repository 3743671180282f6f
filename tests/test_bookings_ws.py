"""Booking events reach the owner tenant's WebSocket connections (the `bookings` subscription), once each,
and never another tenant's."""
from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest
from websockets.asyncio.client import connect

from actors.booking_host import BookingHost
from actors.pipeline import publish_all
from cluster.repositories import bookings as repo
from domain.audit import now_utc
from domain.bookings import request_fingerprint
from tests.booking_fixtures import sandbox_offers  # noqa: F401
from tests.ws_fixtures import make_tenant, running_gateway, token_for


@pytest.fixture(scope="module")
async def gw(settings, pg, redis_client, nats_client):
    g = await running_gateway(settings, ws_batch_ms=5)
    for _ in range(100):
        if g.bookings.connected:
            break
        await asyncio.sleep(0.05)
    yield g
    await g.stop()


async def _recv(ws, kind: str, timeout: float = 10.0) -> dict:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), max(0.05, end - loop.time())))
        if msg.get("type") == kind:
            return msg


async def _quiet(ws, kind: str, seconds: float) -> list[dict]:
    """Frames of `kind` received within `seconds` (expected: none)."""
    got = []
    try:
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), seconds))
            if msg.get("type") == kind:
                got.append(msg)
    except asyncio.TimeoutError:
        return got


async def test_bookings_subscription_gets_its_tenants_events_once(gw, settings, pg, sandbox_offers):
    mine, other = await make_tenant(pg), await make_tenant(pg)
    user = await pg.fetchval("INSERT INTO users (tenant_id, email, password_hash) VALUES ($1, $2, 'x') RETURNING id",
                             uuid.UUID(mine), f"ws-{uuid.uuid4().hex[:8]}@example.test")
    url = f"ws://127.0.0.1:{gw.port}/v1"
    async with connect(url, additional_headers={"Authorization": f"Bearer {token_for(settings, mine)}"}) as ws, \
            connect(url, additional_headers={"Authorization": f"Bearer {token_for(settings, other)}"}) as ws2:
        await _recv(ws, "welcome")
        await _recv(ws2, "welcome")
        await ws.send(json.dumps({"type": "subscribe", "id": "mine", "stream": "bookings"}))
        assert await _recv(ws, "subscribed") == {"type": "subscribed", "id": "mine", "stream": "bookings"}
        await ws2.send(json.dumps({"type": "subscribe", "id": "theirs", "stream": "bookings"}))
        await _recv(ws2, "subscribed")
        await ws.send(json.dumps({"type": "subscribe", "id": "bad", "stream": "bookings", "filter": {"provider": "x"}}))
        err = await _recv(ws, "error")
        assert err["code"] == "invalid" and err["details"][0]["field"] == "filter"
        await ws.send(json.dumps({"type": "subscribe", "id": "bad", "stream": "trades"}))
        assert (await _recv(ws, "error"))["code"] == "invalid"

        host = BookingHost(settings, 0, 1, adopt=False)  # the real host path: transition, outbox, publisher
        try:
            await host.ready()
            async with pg.acquire() as conn, conn.transaction():
                offer = await repo.offer_for_booking(conn, uuid.UUID(sandbox_offers["sbx-h100x1-never"]))
                start = now_utc()
                row, ev = await repo.create(conn, settings, tenant_id=uuid.UUID(mine), user_id=user, offer=offer,
                                            start=start, end=start + timedelta(hours=1), idempotency_key=None,
                                            request_hash=request_fingerprint({}), trace_id=None)
            await host.submit(str(row["id"]), ev)
            first = await _recv(ws, "booking")
            second = await _recv(ws, "booking")
            assert first["id"] == "mine" and first["event"]["booking_id"] == str(row["id"])
            assert [first["event"]["state"], second["event"]["state"]] == ["Draft", "PendingProvision"]
            assert first["event"]["tenant_id"] == mine
            # a relay re-publishing the same message (same Nats-Msg-Id) is not delivered again
            await publish_all(await _js(host), [tuple(ev[:3])])
            assert await _quiet(ws, "booking", 1.0) == []
            assert await _quiet(ws2, "booking", 0.2) == []  # the other tenant saw nothing
            await ws.send(json.dumps({"type": "unsubscribe", "id": "mine"}))
            assert (await _recv(ws, "unsubscribed"))["id"] == "mine"
            await host.cancel(str(row["id"]))
            assert await _quiet(ws, "booking", 1.0) == []
        finally:
            await host.close()


async def _js(host: BookingHost):
    return (await host.rt.get_nats()).jetstream()
