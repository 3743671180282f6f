"""Bootstrapping the first platform operator, who can then create tenants and set plan limits."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

from cluster.operator_cli import create_operator
from tests.auth_fixtures import PASSWORD, login, new_email


async def test_operator_bootstrap_then_manages_tenants(http, pg, settings):
    email = new_email("op")
    first = await create_operator(settings, email, PASSWORD)
    again = await create_operator(settings, email, PASSWORD)
    assert first["state"] == "created" and again["state"] == "exists"
    assert first["tenant_id"] == again["tenant_id"]
    assert await pg.fetchval("SELECT is_platform FROM tenants WHERE id = $1", uuid.UUID(first["tenant_id"]))
    assert await pg.fetchval("SELECT role FROM users WHERE id = $1", uuid.UUID(first["user_id"])) == "admin"

    tokens = await login(http, email)
    h = {"Authorization": f"Bearer {tokens['access_token']}"}
    r = await http.post("/admin/tenants", json={"name": "customer-x", "plan": "pro", "rate_limit_rps": 50,
                                                "burst": 80, "seats": 3, "ws_limit": 2}, headers=h)
    assert r.status_code == 201, r.text
    row = await pg.fetchrow("SELECT plan, rate_limit_rps, burst, ws_limit FROM tenants WHERE id = $1",
                            uuid.UUID(r.json()["id"]))
    assert dict(row) == {"plan": "pro", "rate_limit_rps": 50.0, "burst": 80, "ws_limit": 2}
    actions = [r["action"] for r in await pg.fetch(
        "SELECT action FROM audit_log WHERE tenant_id = $1 ORDER BY id", uuid.UUID(first["tenant_id"]))]
    assert actions[:2] == ["tenant.created", "user.created"]


def test_operator_cli_refuses_weak_password_and_missing_password(settings):
    env = dict(os.environ, GPUBROKER_DATABASE_URL=settings.database_url, GPUBROKER_OPERATOR_PASSWORD="short")
    p = subprocess.run([sys.executable, "-m", "deployments.cli", "operator", "create", "--email", "a@b.example"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "password" in p.stderr.lower()
    env.pop("GPUBROKER_OPERATOR_PASSWORD")
    p = subprocess.run([sys.executable, "-m", "deployments.cli", "operator", "create", "--email", "a@b.example"],
                       env=env, capture_output=True, text=True, timeout=60, input="")
    assert p.returncode == 2 and "GPUBROKER_OPERATOR_PASSWORD" in p.stderr
