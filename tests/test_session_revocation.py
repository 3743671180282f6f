"""Ended sessions end everywhere: a login racing a demotion never keeps the old role, and open WebSocket
streams close with 4401 within moments of a logout, an erasure or a role change (the same check as HTTP)."""
from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from domain.stream_protocol import CLOSE_UNAUTHORIZED
from tests.auth_fixtures import PASSWORD, add_user, login, signup
from tests.ws_fixtures import running_gateway


async def test_login_racing_a_demotion_never_keeps_admin(http, pg):
    boss = await signup(http, "demote-race")
    await pg.execute("UPDATE tenants SET seats = 100 WHERE id = $1", uuid.UUID(boss.tenant_id))
    kept, statuses = [], []
    for i in range(12):
        x = await add_user(http, boss, "admin")

        async def demote(delay: float):
            await asyncio.sleep(delay)
            return await http.put(f"/admin/users/{x.user_id}/role", json={"role": "user"}, headers=boss.h)

        log_in, changed = await asyncio.gather(
            http.post("/auth/login", json={"email": x.email, "password": PASSWORD}), demote(i * 0.025 / 11))
        statuses.append((log_in.status_code, changed.status_code))
        assert changed.status_code == 200, (i, changed.text)
        assert log_in.status_code in (200, 409), (i, log_in.text)
        if log_in.status_code == 200:
            h = {"Authorization": f"Bearer {log_in.json()['access_token']}"}
            r = await http.get("/admin/users", headers=h)
            if r.status_code == 200:
                kept.append(i)
            else:
                assert r.status_code in (401, 403), r.text
                me = await http.get("/auth/me", headers=h)
                assert me.status_code == 401 or me.json()["role"] == "user"
    assert kept == [], f"rounds whose token kept admin rights after the demotion: {kept} ({statuses})"


@pytest.fixture(scope="module")
async def gw(settings, serve_app, redis_client, nats_client):
    g = await running_gateway(settings, ws_batch_ms=5, ws_session_recheck_s=1.0)
    yield g
    await g.stop()


async def _open(gw, token: str):
    ws = await connect(f"ws://127.0.0.1:{gw.port}/v1", additional_headers={"Authorization": f"Bearer {token}"})
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "welcome"
    await ws.send(json.dumps({"type": "subscribe", "id": "s", "filter": {}}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "subscribed"
    return ws


async def _closed_with(ws, timeout: float = 5.0) -> tuple[int, list[dict]]:
    """Frames until the close (heartbeats aside), and the close code; fails if still open after `timeout`."""
    frames = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
    return closed.value.rcvd.code, frames


async def _refused(gw, token: str) -> None:
    with pytest.raises(InvalidStatus) as exc:
        async with connect(f"ws://127.0.0.1:{gw.port}/v1", additional_headers={"Authorization": f"Bearer {token}"}):
            pass
    assert exc.value.response.status_code == 401
    async with connect(f"ws://127.0.0.1:{gw.port}/v1") as ws:  # the auth-message path refuses it too
        await ws.send(json.dumps({"type": "auth", "token": token}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd.code == CLOSE_UNAUTHORIZED


async def test_logout_closes_the_open_stream_and_refuses_the_token(http, gw):
    a = await signup(http, "ws-logout")
    other = await login(http, a.email)  # a second session of the same user stays open
    ws, ws_other = await _open(gw, a.access), await _open(gw, other["access_token"])
    try:
        assert (await http.post("/auth/logout", headers=a.h)).status_code == 204
        code, frames = await _closed_with(ws)
        assert code == CLOSE_UNAUTHORIZED
        assert [f["code"] for f in frames if f["type"] == "error"] == ["session_ended"]
        await _refused(gw, a.access)
        await ws_other.send(json.dumps({"type": "ping", "nonce": "n"}))
        assert json.loads(await asyncio.wait_for(ws_other.recv(), 5))["type"] == "pong"
    finally:
        await ws.close()
        await ws_other.close()


async def test_role_change_and_erasure_close_open_streams(http, gw):
    boss = await signup(http, "ws-roles")
    u = await add_user(http, boss, "user")
    v = await add_user(http, boss, "user")
    ws_u, ws_v = await _open(gw, u.access), await _open(gw, v.access)
    try:
        r = await http.put(f"/admin/users/{u.user_id}/role", json={"role": "auditor"}, headers=boss.h)
        assert r.status_code == 200
        assert (await _closed_with(ws_u))[0] == CLOSE_UNAUTHORIZED
        await _refused(gw, u.access)
        r = await http.post("/data-request/delete", json={"confirm": "ERASE MY DATA"}, headers=v.h)
        assert r.status_code == 200, r.text
        assert (await _closed_with(ws_v))[0] == CLOSE_UNAUTHORIZED
        await _refused(gw, v.access)
    finally:
        await ws_u.close()
        await ws_v.close()


async def test_missed_revocation_event_is_caught_by_the_recheck(http, gw, redis_client, settings):
    """A session ended without an event (as if the event was lost): the periodic recheck closes the stream."""
    from gateway.auth.live_sessions import REVOKED, session_key

    a = await signup(http, "ws-recheck")
    ws = await _open(gw, a.access)
    try:
        sid = next(cl.extra["sid"] for cl in gw.sessions.claims.values() if cl.sub == a.user_id)
        await redis_client.set(session_key(settings, sid), REVOKED, ex=60)  # no pub/sub message
        assert (await _closed_with(ws, timeout=5.0))[0] == CLOSE_UNAUTHORIZED  # recheck every 1 s here
        # a subscribe right after a silent revocation is refused (checked per subscribe; or the recheck wins)
        b = await signup(http, "ws-sub")
        ws2 = await _open(gw, b.access)
        sid2 = next(cl.extra["sid"] for cl in gw.sessions.claims.values() if cl.sub == b.user_id)
        await redis_client.set(session_key(settings, sid2), REVOKED, ex=60)
        await ws2.send(json.dumps({"type": "subscribe", "id": "t", "filter": {}}))
        code, frames = await _closed_with(ws2)
        assert code == CLOSE_UNAUTHORIZED and not [f for f in frames if f["type"] == "subscribed"]
    finally:
        await ws.close()


async def test_api_key_opens_a_stream_until_it_is_revoked(http, gw):
    """An API key passes the same check on the stream as on HTTP, and its revocation closes the stream."""
    a = await signup(http, "ws-key")
    created = (await http.post("/auth/api-keys", json={"name": "stream", "role": "user"}, headers=a.h)).json()
    ws = await _open(gw, created["key"])
    try:
        assert (await http.delete(f"/auth/api-keys/{created['id']}", headers=a.h)).status_code == 204
        assert (await _closed_with(ws))[0] == CLOSE_UNAUTHORIZED
        await _refused(gw, created["key"])
    finally:
        await ws.close()
