"""The billing ledger on the real services: metered usage, a daily invoice equal to the sum of its usage,
FX display with its source, the PDF, roles and tenant isolation of /invoices."""
from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import ray

from actors.booking_host import NAMESPACE, host_name, shard_of
from cluster.billing import PostgresLedger
from cluster.repositories import billing as billing_repo
from domain.audit import now_utc
from tests.auth_fixtures import add_user
from tests.booking_fixtures import book, booking_hosts, sandbox_offers, tenants, wait_state  # noqa: F401


async def _run_and_cancel(http, acc, offer_id, pg, settings, seconds: int) -> dict:
    bk = (await book(http, acc, offer_id, hours=3)).json()
    assert (await wait_state(http, acc, bk["id"], {"Active"}))["state"] == "Active"
    bid = uuid.UUID(bk["id"])
    await pg.execute("UPDATE bookings SET active_since = now() - make_interval(secs => $2) WHERE id = $1", bid, seconds)
    host = ray.get_actor(host_name(settings, shard_of(bid, settings.booking_shards)), namespace=NAMESPACE)
    await host.meter.remote()
    r = await http.post(f"/bookings/{bid}/cancel", headers=acc.h)
    assert r.status_code == 200
    return r.json()


async def test_daily_invoice_equals_the_sum_of_its_usage_with_fx_display_and_pdf(http, tenants, sandbox_offers, pg,
                                                                                settings):
    b = tenants["b"]
    one = await _run_and_cancel(http, b, sandbox_offers["sbx-4090x1-use1"], pg, settings, 7 * 60 + 5)  # 8 minutes
    two = await _run_and_cancel(http, b, sandbox_offers["sbx-h100x8-use1"], pg, settings, 61)  # 2 minutes
    assert one["cost_actual"] == "0.058667" and two["cost_actual"] == "0.664000"
    tid = uuid.UUID(b.tenant_id)
    ledger = PostgresLedger(pg)
    today = now_utc().date()
    [inv] = await ledger.daily_invoices(today, tid)
    start = inv["period_start"]
    usage = await billing_repo.usage_sum(pg, tid, start, start + timedelta(days=1), "USD")
    assert isinstance(inv["total"], Decimal) and inv["total"] == usage == Decimal("0.722667")
    assert inv["usage_count"] == 10 and inv["status"] == "draft" and inv["display_currency"] == "USD"
    # issuing again rebuilds the same open invoice, not a second one
    [again] = await ledger.daily_invoices(today, tid)
    assert again["id"] == inv["id"] and again["total"] == inv["total"]

    r = await http.get("/invoices", headers=b.h)
    assert r.status_code == 200 and [x["id"] for x in r.json()["items"]] == [str(inv["id"])]
    body = (await http.get(f"/invoices/{inv['id']}", headers=b.h)).json()
    assert body["total"] == "0.722667" and body["usage_minutes"] == 10
    lines = {ln["booking_id"]: ln for ln in body["lines"]}
    assert lines[one["id"]]["minutes"] == 8 and lines[one["id"]]["amount"] == "0.058667"
    assert lines[two["id"]]["minutes"] == 2 and lines[two["id"]]["amount"] == "0.664000"
    assert sum(Decimal(ln["amount"]) for ln in body["lines"]) == Decimal(body["total"])

    # the tenant displays EUR: the newest rate before the period's end, with its source and time
    as_of = now_utc() - timedelta(hours=1)
    await billing_repo.record_rate(pg, "USD", "EUR", Decimal("0.9123456789"), "test feed (fixed rate)", as_of)
    r = await http.patch(f"/admin/tenants/{b.tenant_id}", json={"currency": "EUR"}, headers=b.h)
    assert r.status_code == 200, r.text
    [eur] = await ledger.daily_invoices(today, tid)
    body = (await http.get(f"/invoices/{eur['id']}", headers=b.h)).json()
    assert body["total"] == "0.722667" and body["currency"] == "USD"
    assert body["display"] == {"currency": "EUR", "total": "0.66", "fx_rate": "0.9123456789",
                               "fx_source": "test feed (fixed rate)", "fx_as_of": as_of.isoformat()}

    pdf = await http.get(f"/invoices/{inv['id']}?format=pdf", headers=b.h)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and len(pdf.content) > 1000


async def test_invoice_routes_bad_input_roles_and_tenant_isolation(http, tenants, pg):
    a, b = tenants["a"], tenants["b"]
    invoice_id = await pg.fetchval("SELECT id FROM invoices WHERE tenant_id = $1 LIMIT 1", uuid.UUID(b.tenant_id))
    assert invoice_id is not None  # issued by the test above
    assert (await http.get(f"/invoices/{invoice_id}", headers=a.h)).status_code == 404  # another tenant's
    assert (await http.get(f"/invoices/{uuid.uuid4()}", headers=b.h)).status_code == 404
    for url in ("/invoices/not-a-uuid", f"/invoices/{invoice_id}?format=xml", "/invoices?limit=0", "/invoices?cursor=eyJ4IjoxfQ"):
        r = await http.get(url, headers=b.h)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", url
    assert (await http.get("/invoices")).status_code == 401
    user = await add_user(http, a, "user")
    assert (await http.get("/invoices", headers=user.h)).status_code == 403
    assert (await http.get("/invoices", headers=tenants["a_auditor"].h)).status_code == 200
