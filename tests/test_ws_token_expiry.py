"""A stream is never trusted longer than its token: expiry closes it (4440) unless a fresh token was sent."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from domain.stream_protocol import CLOSE_TOKEN_EXPIRED
from gpubroker.stream import PriceStreamClient, StreamRefused
from tests.ws_fixtures import make_tenant, token_for, next_update, price_update, publish, running_gateway, wait_for


@pytest.fixture(scope="module")
async def gw(settings, pg, redis_client, nats_client):
    g = await running_gateway(settings, ws_batch_ms=5)
    yield g
    await g.stop()


@pytest.fixture(scope="module")
async def tenant(pg):
    return await make_tenant(pg, ws_limit=20)


def url(g) -> str:
    return f"ws://127.0.0.1:{g.port}/v1"


async def _recv_until(ws, kind: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
        if msg.get("type") == kind:
            return msg


async def test_expired_token_closes_the_stream_with_4440(gw, settings, tenant):
    t0 = time.time()
    tok = token_for(settings, tenant, ttl_s=2)
    async with connect(url(gw), additional_headers={"Authorization": f"Bearer {tok}"}) as ws:
        welcome = await _recv_until(ws, "welcome")
        assert abs(welcome["token_expires_at"] - (t0 + 2)) <= 1.5
        await ws.send(json.dumps({"type": "subscribe", "filter": {}}))
        await _recv_until(ws, "subscribed")
        err = await _recv_until(ws, "error", timeout=6)
        assert err["code"] == "token_expired"
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == CLOSE_TOKEN_EXPIRED
        assert time.time() >= welcome["token_expires_at"] - 0.05


async def test_fresh_token_on_the_connection_keeps_it_open(gw, settings, tenant, nats_client):
    user = str(uuid.uuid4())
    tok = token_for(settings, tenant, ttl_s=2, sub=user)
    async with connect(url(gw), additional_headers={"Authorization": f"Bearer {tok}"}) as ws:
        first = (await _recv_until(ws, "welcome"))["token_expires_at"]
        await ws.send(json.dumps({"type": "subscribe", "filter": {"provider": "reauthcloud"}}))
        await _recv_until(ws, "subscribed")
        # invalid and foreign tokens are refused and change nothing
        await ws.send(json.dumps({"type": "auth", "token": "not-a-jwt"}))
        assert (await _recv_until(ws, "error"))["code"] == "invalid_token"
        other_user = token_for(settings, tenant, ttl_s=600)
        await ws.send(json.dumps({"type": "auth", "token": other_user}))
        assert (await _recv_until(ws, "error"))["code"] == "token_mismatch"
        # the same user's fresh token moves the deadline
        await ws.send(json.dumps({"type": "auth", "token": token_for(settings, tenant, ttl_s=600, sub=user)}))
        ok = await _recv_until(ws, "authenticated")
        assert ok["token_expires_at"] >= first + 590
        await asyncio.sleep(max(0.0, first - time.time()) + 1.0)  # past the first token's expiry
        seq = await publish(settings, nats_client.jetstream(), price_update("reauthcloud", "L4"))
        frame = await _recv_until(ws, "prices")
        assert [u["seq"] for u in frame["updates"]] == [seq]


async def test_client_with_a_token_callable_refreshes_without_reconnecting(gw, settings, tenant, nats_client):
    user = str(uuid.uuid4())
    issued: list[str] = []

    def fresh() -> str:
        issued.append(token_for(settings, tenant, ttl_s=3, sub=user))
        return issued[-1]

    c = PriceStreamClient(url(gw), fresh, subscriptions={"s": {"provider": "refreshcloud"}}, refresh_before_s=1.5)
    task = asyncio.get_running_loop().create_task(c.run())
    try:
        await asyncio.wait_for(c.ready.wait(), 10)
        first_exp = c.token_expires_at
        await wait_for(lambda: c.refreshes >= 2, timeout=10)  # two refreshes: past two 3 s tokens
        assert time.time() > first_exp
        seq = await publish(settings, nats_client.jetstream(), price_update("refreshcloud", "L4"))
        assert (await next_update(c, 10))["seq"] == seq
        assert c.connects == 1 and len(issued) >= 3
        assert not [e for e in c.events if e.get("type") == "error"]
    finally:
        await c.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_client_with_a_fixed_token_stops_once_it_expired(gw, settings, tenant):
    tok = token_for(settings, tenant, ttl_s=2)
    c = PriceStreamClient(url(gw), tok, subscriptions={"s": {}}, backoff_base=0.1)
    with pytest.raises(StreamRefused) as refused:
        await asyncio.wait_for(c.run(), 15)
    assert refused.value.code == 4401  # after the 4440 close, the reconnect with the same token is refused
    assert c.connects == 1
    assert [e["code"] for e in c.events if e.get("type") == "error"] == ["token_expired"]
