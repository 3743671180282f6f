"""API keys: the whole life (create, shown once, stored hashed, use, last-used, list, revoke -> refused at
once), roles no wider than the creator's, expiry, per-tenant rate limiting, audit, bad input."""
from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from domain.api_keys import grantable
from tests.auth_fixtures import add_user, signup


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("key_role,caller,ok", [("user", "admin", True), ("auditor", "admin", True),
                                                ("admin", "manager", False), ("auditor", "user", False),
                                                ("user", "auditor", False), ("manager", "manager", True)])
def test_grantable_roles(key_role, caller, ok):
    assert grantable(key_role, caller) is ok


async def test_life_of_a_key(http, pg):
    admin = await signup(http, "keys")
    r = await http.post("/auth/api-keys", json={"name": "nightly export", "role": "user"}, headers=admin.h)
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["key"]
    assert key.startswith("gpb_") and len(key) > 40 and created["role"] == "user"
    row = await pg.fetchrow("SELECT key_hash, prefix, last_used_at FROM api_keys WHERE id = $1::uuid", created["id"])
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest() and key not in str(dict(row))
    assert row["last_used_at"] is None and key.startswith(row["prefix"])

    me = await http.get("/auth/me", headers=bearer(key))
    assert me.status_code == 200 and me.json()["id"] == admin.user_id
    assert (await http.get("/admin/audit", headers=bearer(key))).status_code == 403  # the key is a user
    assert await pg.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1::uuid", created["id"]) is not None
    assert me.headers["x-ratelimit-limit"] == "100"  # the tenant's plan, not the per-IP limit

    listed = (await http.get("/auth/api-keys", headers=admin.h)).json()
    assert [k["id"] for k in listed["items"]] == [created["id"]] and "key" not in listed["items"][0]
    assert listed["items"][0]["last_used_at"] is not None

    assert (await http.post("/auth/api-keys", json={"name": "child"}, headers=bearer(key))).status_code == 403
    assert (await http.delete(f"/auth/api-keys/{created['id']}", headers=admin.h)).status_code == 204
    refused = await http.get("/auth/me", headers=bearer(key))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    assert (await http.get("/auth/api-keys", headers=admin.h)).json()["items"] == []
    assert (await http.delete(f"/auth/api-keys/{created['id']}", headers=admin.h)).status_code == 404
    actions = [r["action"] for r in await pg.fetch(
        "SELECT action FROM audit_log WHERE tenant_id = $1::uuid AND target_type = 'api_key' ORDER BY id",
        admin.tenant_id)]
    assert actions == ["api_key.created", "api_key.revoked"]


async def test_roles_expiry_and_ownership(http):
    admin = await signup(http, "keys-roles")
    manager = await add_user(http, admin, "manager")
    r = await http.post("/auth/api-keys", json={"name": "too wide", "role": "admin"}, headers=manager.h)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = await http.post("/auth/api-keys", json={"name": "default role"}, headers=manager.h)
    assert r.status_code == 201 and r.json()["role"] == "manager"
    other = r.json()["id"]
    assert (await http.delete(f"/auth/api-keys/{other}", headers=admin.h)).status_code == 404  # not the admin's
    soon = (datetime.now(timezone.utc) + timedelta(seconds=2)).isoformat()
    r = await http.post("/auth/api-keys", json={"name": "short", "expires_at": soon}, headers=admin.h)
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    assert (await http.get("/auth/me", headers=bearer(key))).status_code == 200
    await asyncio.sleep(2.5)
    assert (await http.get("/auth/me", headers=bearer(key))).status_code == 401


@pytest.mark.parametrize("body,field", [({}, "name"), ({"name": ""}, "name"), ({"name": "x", "role": "root"}, "role"),
                                        ({"name": "x", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
                                        ({"name": "x", "expires_at": "soon"}, "expires_at"),
                                        ({"name": "x", "scope": "all"}, "scope")])
async def test_create_bad_input(http, body, field, key_admin):
    r = await http.post("/auth/api-keys", json=body, headers=key_admin.h)
    assert r.status_code == 422, r.text
    assert field in {d["field"] for d in r.json()["error"]["details"]}


async def test_other_bad_input(http, key_admin):
    assert (await http.post("/auth/api-keys", json={"name": "x"})).status_code == 401
    assert (await http.get("/auth/me", headers=bearer("gpb_" + "A" * 43))).status_code == 401
    r = await http.delete("/auth/api-keys/not-a-uuid", headers=key_admin.h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "key_id"
    assert (await http.delete(f"/auth/api-keys/{uuid.uuid4()}", headers=key_admin.h)).status_code == 404
    r = await http.get("/auth/api-keys", params={"cursor": "eyJvIjoxfQ"}, headers=key_admin.h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "cursor"


@pytest.fixture(scope="module")
async def key_admin(serve_app):
    import httpx

    async with httpx.AsyncClient(base_url=serve_app, timeout=15) as http:
        return await signup(http, "keys-bad")
