"""Helpers for tests that need users: sign up a tenant, log in, make users with a role."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx

PASSWORD = "correct horse battery staple"


@dataclass
class Account:
    email: str
    user_id: str
    tenant_id: str
    role: str
    access: str
    refresh: str

    @property
    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


def new_email(tag: str = "u") -> str:
    return f"{tag}-{secrets.token_hex(6)}@example.test"


async def login(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict:
    r = await http.post("/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()


async def signup(http: httpx.AsyncClient, tenant_name: str = "acme") -> Account:
    email = new_email("admin")
    r = await http.post("/auth/register", json={"email": email, "password": PASSWORD, "tenant_name": tenant_name})
    assert r.status_code == 201, r.text
    body = r.json()
    tok = await login(http, email)
    return Account(email, body["user_id"], body["tenant_id"], "admin", tok["access_token"], tok["refresh_token"])


async def add_user(http: httpx.AsyncClient, admin: Account, role: str) -> Account:
    email = new_email(role)
    r = await http.post("/admin/users", json={"email": email, "password": PASSWORD, "role": role}, headers=admin.h)
    assert r.status_code == 201, r.text
    tok = await login(http, email)
    return Account(email, r.json()["id"], admin.tenant_id, role, tok["access_token"], tok["refresh_token"])
