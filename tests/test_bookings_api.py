"""Bookings end to end on the real services: accept, provision through the sandbox, signed webhooks,
idempotency, the offer re-check, roles, tenant isolation, cancellation and its meter."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import ray

from actors.booking_host import host_name, NAMESPACE, shard_of
from adapters import registry
from cluster.messaging import subject
from tests.booking_fixtures import stream_messages, book, booking_hosts, event, sandbox_offers, signed, tenants, wait_state  # noqa: F401

STD = "sbx-4090x1-use1"




async def test_booking_is_accepted_provisioned_by_webhook_and_published_once_per_transition(
        http, tenants, sandbox_offers, nats_client, settings, pg):
    a = tenants["a"]
    r = await book(http, a, sandbox_offers[STD], key="k-happy-" + uuid.uuid4().hex, price_per_hour="0.440000")
    assert r.status_code == 201, r.text
    b = r.json()
    # accepted means the Draft is committed; the host submits it (Draft -> PendingProvision) after the answer
    assert b["state"] == "Draft" and b["version"] == 0
    assert b["price_per_hour"] == "0.440000" and b["provider"] == "sandbox"
    assert b["cost_estimate"] == "0.440000" and b["currency"] == "USD"
    done = await wait_state(http, a, b["id"], {"Active"})
    assert done["state"] == "Active", done
    assert [(t["from"], t["to"]) for t in done["transitions"]] == [
        (None, "Draft"), ("Draft", "PendingProvision"), ("PendingProvision", "Active")]
    assert done["transitions"][2]["source"] in ("webhook:sandbox", "status")
    assert done["external_booking_id"] == f"sbx-{b['id']}"
    subj = subject(settings, "bookings", a.tenant_id, b["id"])
    for _ in range(50):
        msgs = await stream_messages(nats_client, subj)
        if len(msgs) >= 3:
            break
        await asyncio.sleep(0.2)
    assert [m["state"] for m in msgs] == ["Draft", "PendingProvision", "Active"]
    assert len({m["msg_id"] for m in msgs}) == 3 and all(m["booking_id"] == b["id"] for m in msgs)
    audit = await pg.fetch("SELECT action, details FROM audit_log WHERE target_id = $1 ORDER BY id", b["id"])
    assert [x["details"]["to"] for x in audit] == ["Draft", "PendingProvision", "Active"]


async def test_idempotency_key_same_body_same_booking_other_body_422(http, tenants, sandbox_offers):
    a, key = tenants["a"], "k-" + uuid.uuid4().hex
    first = await book(http, a, sandbox_offers[STD], key=key)
    again = await book(http, a, sandbox_offers[STD], key=key)
    assert first.status_code == 201 and again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    other = await book(http, a, sandbox_offers[STD], key=key, hours=2)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    # the key is the tenant's: another tenant may use the same one for its own booking
    theirs = await book(http, tenants["b"], sandbox_offers[STD], key=key)
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]


async def test_twenty_concurrent_identical_posts_make_one_booking(http, tenants, sandbox_offers, pg):
    a, key = tenants["burst"], "k-20-" + uuid.uuid4().hex
    # the ingress leases rate-limit tokens in batches: the first request fetches this tenant's first batch
    assert (await http.get("/bookings", headers=a.h)).status_code == 200
    rs = await asyncio.gather(*[book(http, a, sandbox_offers[STD], key=key) for _ in range(20)])
    assert all(r.status_code in (200, 201) for r in rs), [r.text for r in rs if r.status_code >= 300]
    assert len({r.json()["id"] for r in rs}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in rs) == 1
    n = await pg.fetchval("SELECT count(*) FROM bookings WHERE idempotency_key = $1", key)
    assert n == 1


async def test_offer_recheck_price_changed_unavailable_stale_and_unsupported(http, tenants, sandbox_offers, pg,
                                                                             settings):
    a = tenants["a"]
    r = await book(http, a, sandbox_offers[STD], price_per_hour="0.40")
    assert r.status_code == 409 and r.json()["error"]["code"] == "price_changed"
    assert r.json()["error"]["details"]["price_per_hour"] == "0.440000"
    l4, a100 = uuid.UUID(sandbox_offers["sbx-l4x1-euw4"]), uuid.UUID(sandbox_offers["sbx-a100x1-euw1"])
    made_key = "k-made-" + uuid.uuid4().hex
    made = await book(http, a, str(l4), key=made_key)
    assert made.status_code == 201, made.text
    await pg.execute("UPDATE offers SET availability = 'down' WHERE id = $1", l4)
    await pg.execute("UPDATE offers SET last_seen_at = now() - interval '2 hours' WHERE id = $1", a100)
    try:
        down = await book(http, a, str(l4))
        stale = await book(http, a, str(a100))
        # a replay answers the booking made before the offer went down; a new key is refused
        replay = await book(http, a, str(l4), key=made_key)
        replay_other_body = await book(http, a, str(l4), key=made_key, hours=3)
    finally:
        await pg.execute("UPDATE offers SET availability = 'up' WHERE id = $1", l4)
        await pg.execute("UPDATE offers SET last_seen_at = now() WHERE id = $1", a100)
    assert down.status_code == 409 and down.json()["error"]["code"] == "offer_unavailable"
    assert down.json()["error"]["details"]["reason"] == "unavailable"
    assert replay.status_code == 201 and replay.json()["id"] == made.json()["id"]
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay_other_body.status_code == 422
    assert replay_other_body.json()["error"]["code"] == "idempotency_key_reused"
    assert stale.status_code == 409 and stale.json()["error"]["details"]["reason"] == "stale"
    from actors.pipeline import Ingestor

    rp = registry.build("runpod")
    await Ingestor(settings, pg).ingest("runpod", rp.parse(rp.load_snapshot()).offers[:1], full=False)
    runpod_offer = await pg.fetchval("SELECT id FROM offers WHERE provider_id = 'runpod' LIMIT 1")
    r = await book(http, a, str(runpod_offer))
    assert r.status_code == 409 and r.json()["error"]["details"]["reason"] == "provider_unsupported"
    assert "not supported" in r.json()["error"]["message"]
    assert (await book(http, a, str(uuid.uuid4()))).status_code == 404


OFFER = object()  # replaced by a real offer id


@pytest.mark.parametrize("body,field", [
    ({"hours": 1}, "offer_id"), ({"offer_id": "nope", "hours": 1}, "offer_id"), ({"offer_id": OFFER}, None),
    ({"offer_id": OFFER, "hours": -1}, "hours"), ({"offer_id": OFFER, "hours": 721}, "hours"),
    ({"offer_id": OFFER, "hours": 1, "end": "2030-01-01T00:00:00Z"}, None),
    ({"offer_id": OFFER, "end": "2030-01-01T00:00:00"}, None), ({"offer_id": OFFER, "hours": 1, "x": 1}, "x"),
    ({"offer_id": OFFER, "hours": 1, "price_per_hour": "abc"}, "price_per_hour"),
    ({"offer_id": OFFER, "hours": 0.001}, "hours"), ({"offer_id": OFFER, "end": "2001-01-01T00:00:00Z"}, "end"),
    ({"offer_id": OFFER, "hours": "1e400"}, "hours"), ({"offer_id": OFFER, "hours": "NaN"}, "hours"),
])
async def test_create_bad_input_is_422_in_the_error_format(http, tenants, sandbox_offers, body, field):
    payload = {k: (sandbox_offers[STD] if v is OFFER else v) for k, v in body.items()}
    r = await http.post("/bookings", json=payload, headers=tenants["a"].h)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["trace_id"] and err["code"] == "validation_error"
    if field:
        assert field in err["message"] or any(field in d["field"] for d in err.get("details", []))
    r = await http.post("/bookings", content=b"{not json", headers={**tenants["a"].h, "Content-Type": "application/json"})
    assert r.status_code == 422


async def test_other_endpoints_bad_input_roles_and_tenant_isolation(http, tenants, sandbox_offers):
    a, b, auditor = tenants["a"], tenants["b"], tenants["a_auditor"]
    bad_key = {**a.h, "Idempotency-Key": "has space"}
    r = await http.post("/bookings", json={"offer_id": sandbox_offers[STD], "hours": 1}, headers=bad_key)
    assert r.status_code == 422 and "idempotency-key" in r.json()["error"]["message"]
    for url in ("/bookings?state=Bogus", "/bookings?limit=0", "/bookings?limit=201", "/bookings?cursor=no%20t",
                "/bookings?cursor=eyJ4IjoxfQ", "/bookings/not-a-uuid"):
        assert (await http.get(url, headers=a.h)).status_code == 422, url
    assert (await http.post("/bookings/not-a-uuid/cancel", headers=a.h)).status_code == 422
    assert (await http.get("/bookings")).status_code == 401
    assert (await http.post("/bookings", json={"offer_id": sandbox_offers[STD], "hours": 1})).status_code == 401
    r = await book(http, auditor, sandbox_offers[STD])
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    mine = (await book(http, a, sandbox_offers[STD])).json()
    assert (await http.get(f"/bookings/{mine['id']}", headers=auditor.h)).status_code == 200
    assert (await http.post(f"/bookings/{mine['id']}/cancel", headers=auditor.h)).status_code == 403
    # another tenant's booking does not exist for b
    assert (await http.get(f"/bookings/{mine['id']}", headers=b.h)).status_code == 404
    assert (await http.post(f"/bookings/{mine['id']}/cancel", headers=b.h)).status_code == 404
    listed = (await http.get("/bookings?limit=200", headers=b.h)).json()
    assert mine["id"] not in {x["id"] for x in listed["items"]}
    assert (await http.get(f"/bookings/{uuid.uuid4()}", headers=a.h)).status_code == 404
    waiting = (await book(http, a, sandbox_offers["sbx-h100x1-never"])).json()  # stays PendingProvision
    assert (await wait_state(http, a, waiting["id"], {"PendingProvision"}))["state"] == "PendingProvision"
    page = (await http.get("/bookings?state=PendingProvision&limit=1", headers=a.h)).json()
    assert len(page["items"]) == 1 and all(x["state"] == "PendingProvision" for x in page["items"])
    seen, cursor = [], None
    while True:  # the cursors walk every booking once
        r = await http.get("/bookings", params={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=a.h)
        seen += [x["id"] for x in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == r.json()["total"]


async def test_webhooks_signed_duplicate_out_of_order_stale_unsigned_unknown(http, tenants, sandbox_offers, pg):
    a = tenants["a"]
    bk = (await book(http, a, sandbox_offers["sbx-h100x1-never"])).json()  # the sandbox never answers it
    assert bk["state"] == "Draft"
    assert (await wait_state(http, a, bk["id"], {"PendingProvision"}))["state"] == "PendingProvision"
    url = "/webhooks/provider/sandbox"
    up = event(bk["id"], "provisioned")
    raw, h = signed(up)
    # unsigned, wrong signature, outside the window, unknown provider: refused, nothing changes
    assert (await http.post(url, content=raw, headers={"Content-Type": "application/json"})).status_code == 401
    _, wrong = signed(up, secret="not-the-secret")
    assert (await http.post(url, content=raw, headers=wrong)).json()["error"]["code"] == "invalid_signature"
    raw_old, old = signed(up, ts=int(time.time()) - 400)
    r = await http.post(url, content=raw_old, headers=old)
    assert r.status_code == 401 and "window" in r.json()["error"]["message"]
    assert (await http.post("/webhooks/provider/nosuch", content=raw, headers=h)).status_code == 404
    assert (await wait_state(http, a, bk["id"], {"PendingProvision"}, 1))["state"] == "PendingProvision"
    # applied once; the same event again changes nothing
    r = await http.post(url, content=raw, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "applied" and r.json()["state"] == "Active"
    r = await http.post(url, content=raw, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "duplicate"
    # a late 'provisioning' (out of order) is acknowledged and ignored
    raw2, h2 = signed(event(bk["id"], "provisioning"))
    r = await http.post(url, content=raw2, headers=h2)
    assert r.status_code == 200 and r.json()["status"] == "ignored" and r.json()["state"] == "Active"
    # an irrecoverable provider error fails an Active booking
    raw3, h3 = signed(event(bk["id"], "failed"))
    assert (await http.post(url, content=raw3, headers=h3)).json()["state"] == "Failed"
    body = (await http.get(f"/bookings/{bk['id']}", headers=a.h)).json()
    assert [t["to"] for t in body["transitions"]] == ["Draft", "PendingProvision", "Active", "Failed"]
    outcomes = [r["outcome"] for r in await pg.fetch(
        "SELECT outcome FROM webhook_events WHERE booking_id = $1 ORDER BY received_at", uuid.UUID(bk["id"]))]
    assert outcomes == ["applied", "ignored: Active -> PendingProvision", "applied"]
    # unknown booking: 404; malformed (but signed) events: 422
    raw4, h4 = signed(event(str(uuid.uuid4()), "provisioned"))
    assert (await http.post(url, content=raw4, headers=h4)).status_code == 404
    for bad in ({"event_id": "x", "type": "exploded", "booking_id": bk["id"]}, {"type": "failed"}):
        rb, hb = signed(bad)
        assert (await http.post(url, content=rb, headers=hb)).status_code == 422
    rb, hb = signed({})
    hb["X-Webhook-Signature"] = __import__("domain.webhooks", fromlist=["sign"]).sign(
        __import__("os").environ["GPUBROKER_SECRET_PROVIDERS_SANDBOX_WEBHOOK_SECRET"], hb["X-Webhook-Timestamp"], b"{nope")
    assert (await http.post(url, content=b"{nope", headers=hb)).status_code == 422


async def test_sandbox_duplicates_and_stale_events_change_nothing_and_failures_fail(http, tenants, sandbox_offers, pg):
    a = tenants["a"]
    chaos = (await book(http, a, sandbox_offers["sbx-h100x1-chaos"])).json()
    fail = (await book(http, a, sandbox_offers["sbx-h100x1-fail"])).json()
    assert (await wait_state(http, a, chaos["id"], {"Active"}))["state"] == "Active"
    failed = await wait_state(http, a, fail["id"], {"Failed"})
    assert failed["state"] == "Failed" and "failed" in failed["last_error"]
    for _ in range(40):  # the sandbox sends its duplicate and its stale event after the first
        seen = await pg.fetch("SELECT outcome FROM webhook_events WHERE booking_id = $1", uuid.UUID(chaos["id"]))
        if len(seen) >= 2:
            break
        await asyncio.sleep(0.25)
    assert sorted(r["outcome"] for r in seen) == ["applied", "ignored: Active -> PendingProvision"]
    body = (await http.get(f"/bookings/{chaos['id']}", headers=a.h)).json()
    assert [t["to"] for t in body["transitions"]] == ["Draft", "PendingProvision", "Active"]


async def test_cancel_closes_the_meter_and_a_second_cancel_is_illegal(http, tenants, sandbox_offers, pg, settings):
    a = tenants["a"]
    bk = (await book(http, a, sandbox_offers[STD], hours=2)).json()
    assert (await wait_state(http, a, bk["id"], {"Active"}))["state"] == "Active"
    bid = uuid.UUID(bk["id"])
    # as if it had run 3 minutes and 10 seconds: the meter writes the 3 whole minutes
    await pg.execute("UPDATE bookings SET active_since = now() - interval '190 seconds' WHERE id = $1", bid)
    host = ray.get_actor(host_name(settings, shard_of(bid, settings.booking_shards)), namespace=NAMESPACE)
    await host.meter.remote()
    assert await pg.fetchval("SELECT count(*) FROM usage_events WHERE booking_id = $1", bid) == 3
    r = await http.post(f"/bookings/{bid}/cancel", headers=a.h)
    assert r.status_code == 200 and r.json()["state"] == "Cancelled"
    # closing bills the started fourth minute; metering afterwards adds nothing
    await host.meter.remote()
    await asyncio.sleep(0.5)
    await host.meter.remote()
    rows = await pg.fetch("SELECT minute, cost_amount FROM usage_events WHERE booking_id = $1 ORDER BY minute", bid)
    assert [x["minute"] for x in rows] == [0, 1, 2, 3]
    assert [str(x["cost_amount"]) for x in rows] == ["0.007333", "0.007334", "0.007333", "0.007333"]
    assert r.json()["cost_actual"] == "0.029333"
    again = await http.post(f"/bookings/{bid}/cancel", headers=a.h)
    assert again.status_code == 409
    err = again.json()["error"]
    assert err["code"] == "illegal_transition" and err["details"] == {"from": "Cancelled", "to": "Cancelled"}
    assert "Cancelled -> Cancelled" in err["message"]
