"""Per-tenant rate limiting through the real Serve app and TenantLimiter actors; per-IP limiting and the
local fallback in-process (no Ray)."""
from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from tests.auth_fixtures import PASSWORD, new_email, signup


async def test_limited_tenant_gets_429_other_tenant_unaffected(http, pg, ray_session, settings):
    slow, other = await signup(http, "limited"), await signup(http, "unlimited")
    await pg.execute("UPDATE tenants SET rate_limit_rps = 1, burst = 2 WHERE id = $1", uuid.UUID(slow.tenant_id))
    statuses, last = [], None
    for _ in range(5):
        last = await http.get("/auth/me", headers=slow.h)
        statuses.append(last.status_code)
        if last.status_code == 200:
            assert last.headers["X-RateLimit-Limit"] == "1"
    assert statuses[:2] == [200, 200] and statuses[2:] == [429, 429, 429], statuses
    assert last.json()["error"]["code"] == "rate_limited" and last.json()["error"]["trace_id"]
    assert last.headers["Retry-After"] == "1"
    assert last.headers["X-RateLimit-Limit"] == "1" and last.headers["X-RateLimit-Remaining"] == "0"
    # the other tenant is unaffected while the first is limited
    for _ in range(10):
        r = await http.get("/auth/me", headers=other.h)
        assert r.status_code == 200 and r.headers["X-RateLimit-Limit"] == "100"
    assert int(r.headers["X-RateLimit-Remaining"]) > 150
    # waiting Retry-After is enough
    await asyncio.sleep(float(last.headers["Retry-After"]))
    assert (await http.get("/auth/me", headers=slow.h)).status_code == 200
    # the tenant's limiter actor exists, named, holding that tenant's limits
    from actors.limiter import NAMESPACE, actor_name

    actor = ray_session.get_actor(actor_name(settings, slow.tenant_id), namespace=NAMESPACE)
    stats = await actor.stats.remote(slow.tenant_id)
    assert (stats["rate"], stats["burst"]) == (1.0, 2.0) and stats["granted"] >= 3


async def test_headers_on_anonymous_and_exempt_routes(http):
    r = await http.post("/auth/refresh", json={})
    assert r.status_code == 422 and r.headers["X-RateLimit-Limit"] == "100"
    h = await http.get("/health")
    assert "X-RateLimit-Limit" not in h.headers


async def test_per_ip_limit_and_local_fallback_in_process(settings, database):
    """No Ray in this app: the tenant bucket falls back to a local one; anonymous calls are limited per IP."""
    import io

    from cluster.logs import configure_logging
    from cluster.runtime import Runtime
    from deployments.ingress import create_app

    s = settings.with_overrides(anon_rate_limit_rps=1, anon_rate_limit_burst=3)
    logs = io.StringIO()
    configure_logging("DEBUG", stream=logs)  # everything our code logs during these flows
    rt = await Runtime(s).start()
    app = create_app(rt)
    app.state.limiter_use_ray = False
    def client(ip: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 1234)), base_url="http://t")

    try:
        async with client("10.1.2.3") as c:
            codes = [(await c.post("/auth/refresh", json={})).status_code for _ in range(5)]
            assert codes == [422, 422, 422, 429, 429]
            r = await c.post("/auth/refresh", json={})
            assert r.headers["Retry-After"] == "1" and r.json()["error"]["code"] == "rate_limited"
            assert (await c.get("/health")).status_code == 200  # exempt
        # another IP has its own bucket; an authenticated tenant uses the local fallback bucket
        async with client("10.9.9.1") as c:
            email = new_email("inproc")
            reg = await c.post("/auth/register", json={"email": email, "password": PASSWORD, "tenant_name": "inproc"})
            assert reg.status_code == 201, reg.text
            tok = await c.post("/auth/login", json={"email": email, "password": PASSWORD})
            assert tok.status_code == 200, tok.text
            pool = await rt.get_pg()
            await pool.execute("UPDATE tenants SET rate_limit_rps = 2, burst = 2 WHERE id = $1",
                               uuid.UUID(reg.json()["tenant_id"]))
            h = {"Authorization": f"Bearer {tok.json()['access_token']}"}
            codes = [(await c.get("/auth/me", headers=h)).status_code for _ in range(4)]
            assert codes == [200, 200, 429, 429]
            await c.post("/auth/login", json={"email": email, "password": "wrong password!"})
    finally:
        await rt.close()
        configure_logging(settings.log_level)
    text = logs.getvalue()
    for secret in (email, PASSWORD, tok.json()["access_token"], tok.json()["refresh_token"]):
        assert secret not in text


async def test_one_shot_burst_within_the_tenant_burst_is_admitted(serve_app, pg):
    """60 requests at once, well within a burst of 200: every one admitted, and the remaining counts
    agree with that (none far below what was spent, none above the burst)."""
    async with httpx.AsyncClient(base_url=serve_app, timeout=30, limits=httpx.Limits(max_connections=100)) as c:
        a = await signup(c, "burst")
        await pg.execute("UPDATE tenants SET rate_limit_rps = 20, burst = 200 WHERE id = $1", uuid.UUID(a.tenant_id))
        await asyncio.sleep(0.1)
        for round_ in range(2):  # 120 of the 200: both bursts fit
            rs = await asyncio.gather(*(c.get("/auth/me", headers=a.h) for _ in range(60)))
            codes = [r.status_code for r in rs]
            assert codes.count(429) == 0, (round_, codes.count(429), [r.headers.get("X-RateLimit-Remaining") for r in rs])
            left = sorted(int(r.headers["X-RateLimit-Remaining"]) for r in rs)
            assert all(0 <= n <= 200 for n in left)
            assert left[0] >= 200 - 60 * (round_ + 1) - 25, left  # 25: prefetched batches and refill slack
