"""Marketplace search through the real Serve app: every filter and sort against the same query in SQL,
pagination, 422s, export, detail, NATS price deltas, the page cache and Redis being down."""
from __future__ import annotations

import csv
import io
import json
import re
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import httpx
import pytest

from cluster.messaging import stream_name, subject
from domain.models import Availability, PriceUpdate
from tests.search_fixtures import (PROVIDERS, api_all, bump_generation, insert_offers, make_offers, sql_ids,
                                   wait_for)

ALL = ",".join(PROVIDERS)
SORTS = ("price_asc", "price_desc", "price_per_gpu_asc", "updated_desc")


@pytest.fixture(scope="module")
async def catalog(serve_app, pg, redis_client, settings):
    """240 offers inserted with SQL; the generation bump makes the running index pick them up."""
    offers = make_offers()
    await insert_offers(pg, offers)
    await bump_generation(redis_client, settings)
    async with httpx.AsyncClient(base_url=serve_app, timeout=10) as c:
        async def loaded():
            r = await c.get("/providers", params={"provider": ALL, "page_size": 1})
            return r.status_code == 200 and r.json()["total"] == len(offers)
        await wait_for(loaded, timeout=20)
    return offers


CASES = [
    ({}, {}),
    ({"gpu_type": "h100"}, {"gpu_type": ["H100"]}),
    ({"gpu_type": "a100_80gb,rtx 4090"}, {"gpu_type": ["A100-80GB", "RTX-4090"]}),
    ({"gpu_type": ["L4", "A10G"]}, {"gpu_type": ["L4", "A10G"]}),
    ({"gpu_count": 8}, {"gpu_count": 8.0}),
    ({"min_gpu_count": 4}, {"min_gpu_count": 4.0}),
    ({"min_gpu_memory_gb": 40}, {"min_gpu_memory_gb": 40.0}),
    ({"provider": "srch-b"}, {"provider": ["srch-b"]}),
    ({"region": "us-east1,asia-east1"}, {"region": ["us-east1", "asia-east1"]}),
    ({"country": "us"}, {"country": ["US"]}),
    ({"continent": "EU"}, {"continent": ["EU"]}),
    ({"max_price": 2.49}, {"max_price": 2.49}),
    ({"max_price_per_gpu": 1.0}, {"max_price_per_gpu": 1.0}),
    ({"pricing": "spot,interruptible"}, {"pricing": ["spot", "interruptible"]}),
    ({"availability": "up"}, {"availability": ["up"]}),
    ({"min_vcpu": 64}, {"min_vcpu": 64.0}),
    ({"min_memory_gb": 128}, {"min_memory_gb": 128.0}),
    ({"tags": "nvlink,sxm"}, {"tags": ["nvlink", "sxm"]}),
    ({"q": "sxm5"}, {"q": "sxm5"}),
    ({"q": "PCIe X8"}, {"q": "PCIe X8"}),
    ({"q": "a100-80gb"}, {"q": "a100-80gb"}),
    ({"q": "h100 nvlink"}, {"q": "h100 nvlink"}),
    ({"gpu_type": "h100", "max_price": 20, "pricing": "on_demand", "availability": "up,degraded"},
     {"gpu_type": ["H100"], "max_price": 20.0, "pricing": ["on_demand"], "availability": ["up", "degraded"]}),
    ({"continent": "NA", "min_gpu_count": 2, "tags": "secure", "min_vcpu": 16},
     {"continent": ["NA"], "min_gpu_count": 2.0, "tags": ["secure"], "min_vcpu": 16.0}),
]


@pytest.mark.parametrize("params,filters", CASES, ids=[str(i) for i in range(len(CASES))])
async def test_filter_and_sort_match_sql(http, pg, catalog, params, filters):
    for sort in SORTS:
        expected = await sql_ids(pg, filters, sort)
        api_params = {**params, "sort": sort}
        api_params.setdefault("provider", ALL)
        total, items = await api_all(http, api_params)
        assert total == len(expected), (sort, params)
        assert [i["id"] for i in items] == expected, (sort, params)
    assert expected or "max_price" in params, "a test case should match something"


async def test_items_carry_the_row_values(http, pg, catalog):
    _, items = await api_all(http, {"provider": ALL})
    rows = {str(r["id"]): r for r in await pg.fetch(
        "SELECT *, price_per_hour::float8 AS p, price_per_gpu_hour::float8 AS ppg FROM offers WHERE provider_id = ANY($1)",
        list(PROVIDERS))}
    assert len(items) == len(rows) == len(catalog)
    for item in items:
        row = rows[item["id"]]
        assert item["provider"] == row["provider_id"]
        for k in ("name", "gpu_type", "gpu_count", "gpu_memory_gb", "vcpu", "memory_gb", "storage_gb", "pricing",
                  "region", "country", "continent", "availability", "tags", "currency"):
            assert item[k] == row[k], k
        assert item["price_per_hour"] == row["p"] and item["price_per_gpu_hour"] == row["ppg"]
        assert datetime.fromisoformat(item["last_updated"]) == row["updated_at"]


async def test_pagination_covers_every_row_once(http, pg, catalog):
    seen, page, total = [], 1, None
    while True:
        r = await http.get("/providers", params={"provider": ALL, "sort": "price_asc", "page": page, "page_size": 7})
        body = r.json()
        total = body["total"] if total is None else total
        if not body["items"]:
            break
        assert len(body["items"]) == min(7, total - len(seen))
        seen += [i["id"] for i in body["items"]]
        page += 1
    assert len(seen) == len(set(seen)) == total == len(catalog)
    assert seen == await sql_ids(pg, {}, "price_asc")


@pytest.mark.parametrize("query,field", [
    ("max_price=-1", "max_price"), ("sort=cheapest", "sort"), ("page_size=1000", "page_size"),
    ("gpu_type=%25%25%25", "gpu_type"), ("gpu_type=notagpu", "gpu_type"), ("page=0", "page"),
    ("continent=XX", "continent"), ("country=USA", "country"), ("pricing=free", "pricing"),
    ("availability=maybe", "availability"), ("min_vcpu=-2", "min_vcpu"), ("max_price_per_gpu=abc", "max_price_per_gpu"),
    ("max_price=inf", "max_price"), ("q=%21%21", "q"), ("bogus=1", "bogus"), ("page=2&page=3", "page"),
])
async def test_invalid_values_are_422_naming_the_field(http, catalog, query, field):
    r = await http.get(f"/providers?{query}")
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "validation_error" and err["trace_id"]
    assert field in [d["field"] for d in err["details"]] and field in err["message"]


async def test_warnings_for_empty_filters_and_stale_providers(http, catalog):
    body = (await http.get("/providers", params={"provider": ALL, "gpu_type": "h100", "max_price": 0.01})).json()
    assert body["total"] == 0 and body["items"] == []
    assert body["warnings"] == ["no offer matches max_price=0.01"]
    body = (await http.get("/providers", params={"provider": "srch-a,nowhere-cloud"})).json()
    assert body["total"] > 0 and "warnings" not in body
    body = (await http.get("/providers", params={"provider": "nowhere-cloud"})).json()
    assert body["warnings"] == ["no offer matches provider=nowhere-cloud"]
    body = (await http.get("/providers", params={"provider": "srch-c"})).json()
    assert body["total"] > 0
    assert any(w.startswith("provider 'srch-c' data is stale: last synced ") for w in body["warnings"]), body


async def test_detail_with_price_history(http, pg, catalog):
    offer = catalog[3]
    oid = str(offer["id"])
    await pg.executemany(
        "INSERT INTO price_history (offer_id, price_per_hour, availability, recorded_at) VALUES ($1, $2, $3, $4)",
        [(offer["id"], Decimal(p), "up", datetime(2026, 1, d, tzinfo=timezone.utc)) for d, p in ((1, "3.5"), (2, "3.25"), (3, "3.0"))])
    r = await http.get(f"/providers/{oid}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == oid and body["external_id"] == offer["external_id"] and body["name"] == offer["name"]
    assert [p["price_per_hour"] for p in body["price_history"]] == [3.0, 3.25, 3.5]
    assert body["price_history"][0]["recorded_at"].startswith("2026-01-03T00:00:00")
    r = await http.get(f"/providers/{uuid.uuid4()}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await http.get("/providers/not-a-uuid")
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "id"


async def test_export_csv_and_json_match_search(http, pg, catalog):
    params = {"provider": ALL, "gpu_type": "h100,l4", "sort": "price_desc"}
    _, items = await api_all(http, params)
    assert [i["id"] for i in items] == await sql_ids(pg, {"gpu_type": ["H100", "L4"]}, "price_desc")
    r = await http.get("/providers/export", params={**params, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["x-total-count"] == str(len(items)) and r.headers["x-export-truncated"] == "false"
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert list(rows[0]) == list(items[0])
    assert len(rows) == len(items)
    for row, item in zip(rows, items):
        for k, v in item.items():
            if k == "tags":
                assert row[k] == ";".join(v)
            elif isinstance(v, float):
                assert float(row[k]) == v, k
            else:
                assert row[k] == ("" if v is None else str(v)), k
    r = await http.get("/providers/export", params={**params, "format": "json"})
    assert r.status_code == 200 and r.json() == items
    r = await http.get("/providers/export", params={**params, "format": "xml"})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "format"


async def _metric(http, name: str) -> float:
    text = (await http.get("/metrics")).text
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


async def test_cache_hit_then_generation_bump_purges(http, redis_client, settings, catalog):
    params = {"provider": "srch-a", "max_price": 31.4159, "sort": "price_desc"}
    hits0 = await _metric(http, "gpubroker_search_cache_hits_total")
    misses0 = await _metric(http, "gpubroker_search_cache_misses_total")
    first = await http.get("/providers", params=params)
    assert await _metric(http, "gpubroker_search_cache_misses_total") == misses0 + 1
    second = await http.get("/providers", params=params)
    assert second.content == first.content
    assert await _metric(http, "gpubroker_search_cache_hits_total") == hits0 + 1
    # Another spelling of the same query misses the in-process tier and hits Redis.
    r = await http.get("/providers?sort=price_desc&max_price=31.41590&provider=srch-a")
    assert r.content == first.content
    assert await _metric(http, "gpubroker_search_cache_hits_total") == hits0 + 2
    keys = [k async for k in redis_client.scan_iter(match=settings.redis_prefix + "search:page:*")]
    assert keys
    for k in keys:
        assert 0 < await redis_client.ttl(k) <= 60
    assert await _metric(http, "gpubroker_search_cache_hit_ratio") > 0
    gen = await bump_generation(redis_client, settings)

    async def missed():
        before = await _metric(http, "gpubroker_search_cache_misses_total")
        await http.get("/providers", params=params)
        return await _metric(http, "gpubroker_search_cache_misses_total") == before + 1
    await wait_for(missed, timeout=5, interval=0.1)

    async def new_keys():  # written in the background, pipelined with other writes
        return [k async for k in redis_client.scan_iter(match=f"{settings.redis_prefix}search:page:{gen}.*")]
    await wait_for(new_keys, timeout=2)


async def _publish(nats_client, settings, offer: dict, price: Decimal, ts: datetime) -> None:
    upd = PriceUpdate(offer_id=offer["id"], external_id=offer["external_id"], provider=offer["provider_id"],
                      gpu_type=offer["gpu_type"], region=offer["region"], old_price=None, new_price=price,
                      availability=Availability.up, ts=ts)
    ack = await nats_client.jetstream().publish(subject(settings, "prices", offer["provider_id"], offer["gpu_type"]),
                                                upd.model_dump_json().encode(), stream=stream_name(settings, "PRICES"))
    assert ack.seq > 0


async def test_price_delta_visible_within_a_second(http, pg, nats_client, settings, catalog):
    offer = next(o for o in catalog if o["provider_id"] == "srch-a")
    params = {"provider": "srch-a", "sort": "price_desc", "page_size": 1}
    before = (await http.get("/providers", params=params)).json()["items"][0]  # cached now
    assert before["id"] != str(offer["id"])
    price, ts = Decimal("123.456789"), datetime.now(timezone.utc)
    # As ingestion does: the row first, then the delta.
    await pg.execute("UPDATE offers SET price_per_hour = $2, price_per_gpu_hour = round($2 / gpu_count::numeric, 6),"
                     " availability = 'up', updated_at = $3 WHERE id = $1", offer["id"], price, ts)
    t0 = time.monotonic()
    await _publish(nats_client, settings, offer, price, ts)

    async def visible():
        r = await http.get("/providers", params=params)
        assert r.status_code == 200, r.text
        item = r.json()["items"][0]
        return item if item["id"] == str(offer["id"]) else None
    item, _ = await wait_for(visible, timeout=5, interval=0.02)
    elapsed = time.monotonic() - t0
    assert item["price_per_hour"] == 123.456789 and item["availability"] == "up"
    assert item["price_per_gpu_hour"] == float(round(price / Decimal(offer["gpu_count"]), 6))
    assert elapsed < 1.0, f"delta took {elapsed:.2f}s to show up"


async def test_delta_for_unknown_offer_is_fetched_from_postgres(http, pg, nats_client, settings, catalog):
    new = make_offers(1, seed=99)[0] | {"provider_id": "srch-b", "external_id": "srch-b-new", "price_per_hour": 99.5,
                                        "price_per_gpu_hour": round(99.5 / make_offers(1, seed=99)[0]["gpu_count"], 6),
                                        "last_seen_at": datetime.now(timezone.utc)}
    await insert_offers(pg, [new])  # no generation bump: only the delta tells the index
    await _publish(nats_client, settings, new, Decimal("99.5"), new["updated_at"])

    async def visible():
        body = (await http.get("/providers", params={"provider": "srch-b", "sort": "price_desc", "page_size": 1})).json()
        return body["items"] and body["items"][0]["id"] == str(new["id"])
    await wait_for(visible, timeout=5)
    catalog.append(new)


async def test_search_deployment_handle_answers_the_same(http, catalog):
    from ray import serve

    handle = serve.get_deployment_handle("Search", app_name="gpubroker")
    query = "provider=srch-a,srch-b,srch-c&gpu_type=h100&sort=price_per_gpu_asc&page_size=50"
    expected = (await http.get(f"/providers?{query}")).json()

    async def same():
        reply = await handle.search.remote(query.encode())
        return reply.status == 200 and json.loads(reply.body) == expected
    await wait_for(same, timeout=15, interval=0.2)
    reply = await handle.search.remote(b"sort=nope")
    assert reply.status == 422 and reply.error["details"][0]["field"] == "sort"


async def test_redis_down_search_still_answers(settings, pg, catalog):
    """An in-process app whose Redis URL points at a closed port: answers from the index, quickly."""
    from cluster.runtime import Runtime
    from deployments.ingress import create_app
    from tests.conftest import free_port

    bad = settings.with_overrides(redis_url=f"redis://127.0.0.1:{free_port()}/1")
    app = create_app(await Runtime(bad).start(), {})
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as c:
            expected = await sql_ids(pg, {"gpu_type": ["A100-80GB"]}, "price_asc")
            t0 = time.monotonic()
            for _ in range(20):
                r = await c.get("/providers", params={"provider": ALL, "gpu_type": "a100-80gb", "page_size": 100})
                assert r.status_code == 200, r.text
            assert time.monotonic() - t0 < 2.0
            assert [i["id"] for i in r.json()["items"]] == expected
            assert (await c.get("/ready")).status_code == 503
