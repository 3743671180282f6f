"""Roles against a table of routes, tenant isolation (404), tenant admin with audit in the same transaction,
tamper detection by verify (endpoint and CLI), GDPR export and erasure."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.auth_fixtures import PASSWORD, add_user, login, new_email, signup

ROLES = ("admin", "manager", "user", "auditor")


@pytest.fixture(scope="module")
async def org(serve_app, pg):
    """A platform tenant with one account per role and a spare user to change roles on."""
    import httpx

    async with httpx.AsyncClient(base_url=serve_app, timeout=15) as http:
        admin = await signup(http, "platform-org")
        await pg.execute("UPDATE tenants SET is_platform = true, seats = 50 WHERE id = $1", uuid.UUID(admin.tenant_id))
        accounts = {"admin": admin}
        for role in ("manager", "user", "auditor"):
            accounts[role] = await add_user(http, admin, role)
        spare = await add_user(http, admin, "user")
    return accounts, spare


# route -> roles allowed (one table, mirroring domain.permissions)
def _routes(tenant_id: str, spare_id: str):
    return [
        ("GET", "/auth/me", None, set(ROLES)),
        ("GET", "/data-request", None, set(ROLES)),
        ("GET", "/admin/tenants", None, {"admin", "manager", "auditor"}),
        ("GET", f"/admin/tenants/{tenant_id}", None, {"admin", "manager", "auditor"}),
        ("PATCH", f"/admin/tenants/{tenant_id}", {"name": "renamed"}, {"admin"}),
        ("POST", "/admin/tenants", {"name": "child"}, {"admin"}),
        ("GET", "/admin/users", None, {"admin", "manager", "auditor"}),
        ("POST", "/admin/users", "NEWUSER", {"admin"}),
        ("PUT", f"/admin/users/{spare_id}/role", {"role": "user"}, {"admin"}),
        ("GET", "/admin/audit", None, {"admin", "auditor"}),
        ("GET", "/admin/audit/verify", None, {"admin", "auditor"}),
    ]


async def test_each_role_against_the_route_table(http, org):
    accounts, spare = org
    for method, path, body, allowed in _routes(accounts["admin"].tenant_id, spare.user_id):
        for role in ROLES:
            if body == "NEWUSER":
                payload = {"email": new_email("n"), "password": PASSWORD, "role": "user"}
            else:
                payload = body
            r = await http.request(method, path, json=payload, headers=accounts[role].h)
            if role in allowed:
                assert r.status_code in (200, 201), (method, path, role, r.text)
            else:
                assert r.status_code == 403, (method, path, role, r.text)
                assert r.json()["error"]["code"] == "forbidden"


async def test_tenant_isolation_404_and_platform_scope(http, pg, org):
    accounts, _ = org
    platform = accounts["admin"]
    a, b = await signup(http, "iso-a"), await signup(http, "iso-b")
    b_user = await add_user(http, b, "user")
    for method, path, body in [("GET", f"/admin/tenants/{b.tenant_id}", None),
                               ("PATCH", f"/admin/tenants/{b.tenant_id}", {"name": "pwned"}),
                               ("DELETE", f"/admin/tenants/{b.tenant_id}", None),
                               ("PUT", f"/admin/users/{b_user.user_id}/role", {"role": "admin"}),
                               ("GET", f"/admin/tenants/{uuid.uuid4()}", None)]:
        r = await http.request(method, path, json=body, headers=a.h)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"
    listed = (await http.get("/admin/tenants", headers=a.h)).json()["items"]
    assert [t["id"] for t in listed] == [a.tenant_id]
    users = (await http.get("/admin/users", headers=a.h)).json()["items"]
    assert {u["tenant_id"] for u in users} == {a.tenant_id}
    assert all(e["tenant_id"] == a.tenant_id for e in (await http.get("/admin/audit", headers=a.h)).json()["items"])
    assert await pg.fetchval("SELECT name FROM tenants WHERE id = $1", uuid.UUID(b.tenant_id)) == "iso-b"
    # a tenant admin may rename its tenant but not raise its own plan limits
    r = await http.patch(f"/admin/tenants/{a.tenant_id}", json={"rate_limit_rps": 10000}, headers=a.h)
    assert r.status_code == 403
    # a platform operator sees and changes other tenants; the change lands on that tenant's chain
    r = await http.patch(f"/admin/tenants/{b.tenant_id}", json={"rate_limit_rps": 250, "burst": 500, "seats": 9},
                         headers=platform.h)
    assert r.status_code == 200, r.text
    assert (r.json()["rate_limit_rps"], r.json()["burst"], r.json()["seats"]) == (250, 500, 9)
    entry = await pg.fetchrow("SELECT * FROM audit_log WHERE tenant_id = $1 AND action = 'tenant.updated'",
                              uuid.UUID(b.tenant_id))
    assert entry["user_id"] == uuid.UUID(platform.user_id)
    assert entry["details"]["changes"]["rate_limit_rps"] == {"from": "100.0", "to": "250.0"}
    created = await http.post("/admin/tenants", json={"name": "made-by-op", "plan": "pro", "seats": 3},
                              headers=platform.h)
    assert created.status_code == 201 and created.json()["plan"] == "pro"
    r = await http.delete(f"/admin/tenants/{created.json()['id']}", headers=platform.h)
    assert r.status_code == 204
    assert (await http.get(f"/admin/tenants/{created.json()['id']}", headers=platform.h)).status_code == 404
    acts = [x["action"] for x in await pg.fetch("SELECT action FROM audit_log WHERE tenant_id = $1 ORDER BY id",
                                                uuid.UUID(created.json()["id"]))]
    assert acts == ["tenant.created", "tenant.deleted"]


async def test_role_change_is_audited_and_ends_sessions(http, pg):
    a = await signup(http, "roles")
    u = await add_user(http, a, "user")
    r = await http.put(f"/admin/users/{u.user_id}/role", json={"role": "auditor"}, headers=a.h)
    assert r.status_code == 200 and r.json()["role"] == "auditor"
    assert (await http.get("/auth/me", headers=u.h)).status_code == 401  # old token carried role=user
    tok = await login(http, u.email)
    me = await http.get("/auth/me", headers={"Authorization": f"Bearer {tok['access_token']}"})
    assert me.json()["role"] == "auditor"
    row = await pg.fetchrow("SELECT details FROM audit_log WHERE action = 'user.role_changed' AND target_id = $1",
                            u.user_id)
    assert row["details"] == {"from": "user", "to": "auditor"}
    r = await http.put(f"/admin/users/{a.user_id}/role", json={"role": "user"}, headers=a.h)
    assert r.status_code == 409  # the last admin keeps the role
    await pg.execute("UPDATE tenants SET seats = 2 WHERE id = $1", uuid.UUID(a.tenant_id))
    r = await http.post("/admin/users", json={"email": new_email(), "password": PASSWORD}, headers=a.h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "seats_exhausted"


async def test_tampered_audit_row_found_by_verify(http, pg, settings):
    a = await signup(http, "tamper")
    await add_user(http, a, "user")
    ok = await http.get("/admin/audit/verify", headers=a.h)
    assert ok.status_code == 200 and ok.json()["ok"] is True and ok.json()["entries_checked"] >= 4
    ids = [r["id"] for r in await pg.fetch("SELECT id FROM audit_log WHERE tenant_id = $1 ORDER BY id",
                                           uuid.UUID(a.tenant_id))]
    victim = ids[2]
    # an attacker with database superuser rights bypasses the append-only trigger
    async with pg.acquire() as conn:
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
        try:
            await conn.execute("UPDATE audit_log SET details = '{\"role\": \"admin\"}' WHERE id = $1", victim)
        finally:
            await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update")
    r = await http.get("/admin/audit/verify", headers=a.h)
    body = r.json()
    assert body["ok"] is False
    assert body["first_broken"] == {"tenant_id": a.tenant_id, "entry_id": victim,
                                    "reason": "hash_curr does not match the entry's content"}
    env = dict(os.environ, GPUBROKER_DATABASE_URL=settings.database_url, PYTHONPATH=os.getcwd())
    p = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "deployments.cli", "audit", "verify", "--tenant",
                                                 a.tenant_id], capture_output=True, text=True, env=env)
    assert p.returncode == 1, p.stderr
    assert f"first broken link at entry {victim}" in p.stdout
    other = await signup(http, "clean")
    p = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "deployments.cli", "audit", "verify", "--tenant",
                                                 other.tenant_id], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and "audit log OK: 3 entries" in p.stdout, p.stdout + p.stderr


async def test_export_contains_every_record_then_erasure_keeps_chain(http, pg):
    a = await signup(http, "gdpr")
    await pg.execute("INSERT INTO providers (id, name) VALUES ('gdprtest', 'GDPR test') ON CONFLICT DO NOTHING")
    offer = await pg.fetchval(
        "INSERT INTO offers (provider_id, external_id, name, gpu_type, gpu_count, price_per_hour, price_per_gpu_hour, "
        "region) VALUES ('gdprtest', $1, 'box', 'H100', 1, 2.5, 2.5, 'eu') RETURNING id", uuid.uuid4().hex)
    now = datetime.now(timezone.utc)
    booking = await pg.fetchval(
        "INSERT INTO bookings (tenant_id, user_id, offer_id, start_time, end_time) VALUES ($1, $2, $3, $4, $5) "
        "RETURNING id", uuid.UUID(a.tenant_id), uuid.UUID(a.user_id), offer, now, now + timedelta(hours=1))
    invoice = await pg.fetchval("INSERT INTO invoices (tenant_id, period_start, period_end, total) "
                                "VALUES ($1, $2, $3, 12.5) RETURNING id", uuid.UUID(a.tenant_id), now, now)
    r = await http.get("/data-request", headers=a.h)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["profile"]["email"] == a.email and doc["profile"]["id"] == a.user_id
    assert "password_hash" not in doc["profile"]
    assert len(doc["sessions"]) == 1 and doc["sessions"][0]["ip"] == "127.0.0.1"
    assert [b["id"] for b in doc["bookings"]] == [str(booking)]
    assert [i["id"] for i in doc["invoices"]] == [str(invoice)] and doc["invoices"][0]["total"] == "12.500000"
    assert [e["action"] for e in doc["audit_entries"]] == ["tenant.created", "user.created", "auth.login"]
    # erasure
    bad = await http.post("/data-request/delete", json={"confirm": "yes"}, headers=a.h)
    assert bad.status_code == 422 and "confirm" in bad.json()["error"]["message"]
    r = await http.post("/data-request/delete", json={"confirm": "ERASE MY DATA"}, headers=a.h)
    assert r.status_code == 200, r.text
    user = await pg.fetchrow("SELECT email, password_hash, deleted_at FROM users WHERE id = $1", uuid.UUID(a.user_id))
    assert user["email"] == f"erased-{a.user_id}@erased.invalid" and user["password_hash"] == "!"
    assert await pg.fetchval("SELECT count(*) FROM auth_sessions WHERE user_id = $1 AND (ip IS NOT NULL OR "
                             "revoked_at IS NULL)", uuid.UUID(a.user_id)) == 0
    assert (await http.get("/auth/me", headers=a.h)).status_code == 401
    assert (await http.post("/auth/login", json={"email": a.email, "password": PASSWORD})).status_code == 401
    # no audit row of the tenant holds the email, and the chain still verifies
    rows = await pg.fetch("SELECT * FROM audit_log WHERE tenant_id = $1", uuid.UUID(a.tenant_id))
    assert a.email not in repr([dict(x) for x in rows])
    assert {x["action"] for x in rows} >= {"data.exported", "data.erased"}
    from cluster.audit import verify_audit

    report = await verify_audit(pg, a.tenant_id)
    assert report["ok"] and report["entries_checked"] == len(rows)


@pytest.mark.parametrize("method,path,body,field", [
    ("POST", "/admin/tenants", {}, "name"),
    ("POST", "/admin/tenants", {"name": "x", "rate_limit_rps": -1}, "rate_limit_rps"),
    ("POST", "/admin/tenants", {"name": "x", "plan": "gold"}, "plan"),
    ("PATCH", "/admin/tenants/TENANT", {"burst": 0}, "burst"),
    ("PATCH", "/admin/tenants/TENANT", {}, "body"),
    ("GET", "/admin/tenants/not-a-uuid", None, "tenant_id"),
    ("DELETE", "/admin/tenants/not-a-uuid", None, "tenant_id"),
    ("POST", "/admin/users", {"email": "bad", "password": PASSWORD}, "email"),
    ("POST", "/admin/users", {"email": "a@b.test", "password": "short"}, "password"),
    ("PUT", "/admin/users/USER/role", {"role": "root"}, "role"),
    ("PUT", "/admin/users/nope/role", {"role": "user"}, "user_id"),
    ("GET", "/admin/audit?limit=0", None, "limit"),
    ("GET", "/admin/audit?after_id=x", None, "after_id"),
    ("GET", "/admin/audit/verify?all=maybe", None, "all"),
    ("POST", "/data-request/delete", {}, "confirm"),
])
async def test_bad_input_on_admin_and_gdpr(http, org, method, path, body, field):
    accounts, spare = org
    admin = accounts["admin"]
    path = path.replace("TENANT", admin.tenant_id).replace("USER", spare.user_id)
    r = await http.request(method, path, json=body, headers=admin.h)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "validation_error" and field in err["message"], err


async def test_concurrent_appends_keep_one_chain(pg):
    """Appends to one tenant's chain from many transactions at once are serialized: the chain verifies."""
    from cluster.audit import append_audit, verify_audit

    tenant = await pg.fetchval("INSERT INTO tenants (name) VALUES ('chain') RETURNING id")

    async def one(i: int) -> None:
        async with pg.acquire() as conn, conn.transaction():
            await append_audit(conn, tenant, None, "test.concurrent", "n", i, ip="203.0.113.77",
                               details={"i": i, "price": 1.25})

    await asyncio.gather(*(one(i) for i in range(24)))
    report = await verify_audit(pg, tenant)
    assert report == {"ok": True, "entries_checked": 24, "chains": 1, "first_broken": None, "broken_chains": []}
    rows = await pg.fetch("SELECT hash_prev, hash_curr, ip FROM audit_log WHERE tenant_id = $1 ORDER BY id", tenant)
    assert len({r["hash_prev"] for r in rows}) == 24  # nobody linked to the same predecessor
    assert {r["ip"] for r in rows} == {"203.0.113.0"}  # stored truncated
    async with pg.acquire() as conn:
        with pytest.raises(RuntimeError, match="inside the transaction"):
            await append_audit(conn, tenant, None, "test.outside")
