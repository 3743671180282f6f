"""One pagination convention on every list route: `limit` + `cursor` in, `items` + `next_cursor` out.

Walking the cursors must give every item exactly once, in the same order as one big page; the older
spellings (`page`/`page_size` on search, `after_id` on the audit trail) keep working; a foreign or
malformed cursor is a 422 naming `cursor`.
"""
from __future__ import annotations

import httpx
import pytest

from tests.auth_fixtures import add_user, signup
from tests.search_fixtures import PROVIDERS, bump_generation, insert_offers, make_offers, wait_for


async def _walk(http, path: str, params: dict, headers: dict | None = None) -> tuple[list, int]:
    items, cursor, pages = [], None, 0
    while True:
        r = await http.get(path, params={**params, **({"cursor": cursor} if cursor else {})}, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


@pytest.fixture(scope="module")
async def paged_catalog(serve_app, pg, redis_client, settings):
    offers = make_offers(n=30, seed=11)
    for o in offers:
        o["provider_id"] = "pg-" + o["provider_id"]
    await insert_offers(pg, offers)
    await bump_generation(redis_client, settings)
    providers = ",".join("pg-" + p for p in PROVIDERS)

    async with httpx.AsyncClient(base_url=serve_app, timeout=10) as http:
        async def loaded():
            r = await http.get("/providers", params={"provider": providers, "page_size": 1})
            return r.status_code == 200 and r.json()["total"] == len(offers)
        await wait_for(loaded, timeout=20)
    return providers


@pytest.fixture(scope="module")
async def some_admin(serve_app):
    async with httpx.AsyncClient(base_url=serve_app, timeout=10) as http:
        return await signup(http, "paging-bad")


async def test_search_cursor_walk_equals_one_page(http, paged_catalog):
    params = {"provider": paged_catalog, "sort": "price_desc"}
    whole = (await http.get("/providers", params={**params, "page_size": 100})).json()
    assert whole["next_cursor"] is None and whole["total"] == 30
    items, pages = await _walk(http, "/providers", {**params, "limit": 7})
    assert [i["id"] for i in items] == [i["id"] for i in whole["items"]] and pages == 5
    paged = (await http.get("/providers", params={**params, "page": 2, "page_size": 7})).json()
    assert [i["id"] for i in paged["items"]] == [i["id"] for i in whole["items"][7:14]]
    assert paged["next_cursor"] is not None  # the page style gets a cursor too


async def test_admin_users_and_tenants_pages(http):
    admin = await signup(http, "paging")
    for role in ("user", "manager", "auditor", "user"):
        await add_user(http, admin, role)
    items, pages = await _walk(http, "/admin/users", {"limit": 2}, admin.h)
    assert len(items) == 5 and len({i["id"] for i in items}) == 5 and pages == 3
    assert [i["email"] for i in items][0] == admin.email  # oldest first
    whole = (await http.get("/admin/users", headers=admin.h)).json()
    assert whole["total"] == 5 and [i["id"] for i in whole["items"]] == [i["id"] for i in items]
    tenants = (await http.get("/admin/tenants", params={"limit": 1}, headers=admin.h)).json()
    assert [t["id"] for t in tenants["items"]] == [admin.tenant_id] and tenants["next_cursor"] is None


async def test_audit_cursor_and_after_id_agree(http):
    admin = await signup(http, "paging-audit")
    for role in ("user", "user"):
        await add_user(http, admin, role)
    items, _ = await _walk(http, "/admin/audit", {"limit": 2}, admin.h)
    ids = [i["id"] for i in items]
    assert ids == sorted(ids) and len(ids) >= 4
    r = (await http.get("/admin/audit", params={"limit": 2}, headers=admin.h)).json()
    old = (await http.get("/admin/audit", params={"limit": 2, "after_id": r["next_after_id"]}, headers=admin.h)).json()
    assert [i["id"] for i in old["items"]] == ids[2:4]


@pytest.mark.parametrize("path", ["/admin/users", "/admin/tenants", "/admin/audit", "/providers"])
@pytest.mark.parametrize("cursor", ["eyJvIjoxMH0x", "!!", "eyJ4IjoxfQ"])
async def test_foreign_cursor_is_422(http, some_admin, path, cursor):
    r = await http.get(path, params={"cursor": cursor}, headers=some_admin.h)
    assert r.status_code == 422, r.text
    assert "cursor" in {d["field"] for d in r.json()["error"]["details"]}
