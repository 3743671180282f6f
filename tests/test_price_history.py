"""Price history through the real Serve app: bucket statistics by GPU against a Python oracle, keyset
pages of one offer (complete, ordered, no duplicates), and the 422/404 answers of both routes."""
from __future__ import annotations

import statistics
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest

START = datetime(2025, 3, 3, tzinfo=timezone.utc)  # a Monday
OFFERS = [  # (provider, gpu_type, region, pricing)
    ("hist-a", "H100-SXM", "us-east1", "on_demand"),
    ("hist-a", "H100-PCIe", "us-east1", "on_demand"),   # same series key as the SXM offer: pooled
    ("hist-a", "H100-SXM", "europe-west4", "spot"),
    ("hist-b", "H100-NVL", "us-west-2", "on_demand"),
    ("hist-b", "A100-80GB-SXM", "us-west-2", "on_demand"),  # not an H100: never in an H100 answer
]


@pytest.fixture(scope="module")
async def history(serve_app, pg):
    """5 offers, 40 points each: one every 9 hours from START, prices varying by offer and time."""
    await pg.executemany("INSERT INTO providers (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING",
                         [("hist-a",), ("hist-b",)])
    points = []
    for n, (prov, gpu, region, pricing) in enumerate(OFFERS):
        oid = uuid.uuid4()
        await pg.execute(
            "INSERT INTO offers (id, provider_id, external_id, name, gpu_type, gpu_count, price_per_hour, "
            "price_per_gpu_hour, pricing, region) VALUES ($1, $2, $3, $3, $4, 1, 2, 2, $5, $6)",
            oid, prov, f"{prov}-{n}", gpu, pricing, region)
        for k in range(40):
            price = round(1 + n * 0.5 + (k * 7 % 11) * 0.13, 6)
            points.append((oid, price, "up" if k % 5 else "degraded", START + timedelta(hours=9 * k)))
    await pg.executemany("INSERT INTO price_history (offer_id, price_per_hour, availability, recorded_at) "
                         "VALUES ($1, $2, $3, $4)", points)
    return points


def _oracle(points, offers_by_id, bucket: str, start, end):
    groups = defaultdict(list)
    for oid, price, _, ts in points:
        prov, gpu, region, pricing = offers_by_id[oid]
        if not gpu.startswith("H100") or not (start <= ts < end):
            continue
        day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
        b = day - timedelta(days=day.weekday()) if bucket == "week" else day
        groups[(prov, region, pricing, b)].append(price)
    return {k: (min(v), statistics.median(v), max(v), len(v)) for k, v in groups.items()}


@pytest.mark.parametrize("bucket", ["day", "week"])
async def test_gpu_history_buckets_match_oracle(http, pg, history, bucket):
    ids = {r["id"]: r for r in await pg.fetch("SELECT id, external_id FROM offers WHERE provider_id LIKE 'hist-%'")}
    offers_by_id = {oid: OFFERS[int(r["external_id"].rsplit("-", 1)[1])] for oid, r in ids.items()}
    start, end = START + timedelta(days=2), START + timedelta(days=12)
    r = await http.get("/prices/history", params={"gpu_type": "h100", "from": start.isoformat(),
                                                  "to": end.isoformat(), "bucket": bucket})
    assert r.status_code == 200, r.text
    body = r.json()
    assert sorted(body["gpus"]) == ["H100-NVL", "H100-PCIe", "H100-SXM"]
    assert body["bucket"] == bucket and body["from"].startswith("2025-03-05")
    got = {}
    for s in body["series"]:
        if not s["provider"].startswith("hist-"):
            continue
        starts = [p["bucket_start"] for p in s["points"]]
        assert starts == sorted(starts)
        for p in s["points"]:
            b = datetime.fromisoformat(p["bucket_start"])
            got[(s["provider"], s["region"], s["pricing"], b)] = (p["min"], p["median"], p["max"], p["samples"])
    expected = _oracle(history, offers_by_id, bucket, start, end)
    assert got.keys() == expected.keys()
    for k, v in expected.items():
        assert got[k] == pytest.approx(v), k
    # pooled series: the SXM and PCIe offers of hist-a in us-east1 share one series
    assert any(v[3] > 3 for k, v in got.items() if k[:3] == ("hist-a", "us-east1", "on_demand"))


async def test_gpu_history_narrowing_filters(http, history):
    r = await http.get("/prices/history", params={"gpu_type": "H100 SXM", "from": "2025-03-01", "to": "2025-04-01",
                                                  "provider": "hist-a", "pricing": "spot"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["gpus"] == ["H100-SXM"]
    assert {(s["provider"], s["region"], s["pricing"]) for s in body["series"]} == {("hist-a", "europe-west4", "spot")}
    assert sum(p["samples"] for p in body["series"][0]["points"]) == 40


async def test_offer_history_keyset_pages(http, pg, history):
    oid = await pg.fetchval("SELECT id FROM offers WHERE external_id = 'hist-a-0'")
    expected = sorted((ts for o, _, _, ts in history if o == oid), reverse=True)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        r = await http.get(f"/providers/{oid}/history", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["offer_id"] == str(oid) and len(body["items"]) <= 7
        seen += [datetime.fromisoformat(p["recorded_at"]) for p in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected and pages == 6  # 40 points: 5 full pages and one of 5
    r = await http.get(f"/providers/{oid}/history", params={"from": "2025-03-04", "to": "2025-03-05"})
    assert [p["recorded_at"][:13] for p in r.json()["items"]] == ["2025-03-04T21", "2025-03-04T12", "2025-03-04T03"]


BAD_GPU_HISTORY = [
    ({}, "gpu_type"),
    ({"gpu_type": "Z9000"}, "gpu_type"),
    ({"gpu_type": "H100", "bucket": "month"}, "bucket"),
    ({"gpu_type": "H100", "from": "yesterday"}, "from"),
    ({"gpu_type": "H100", "from": "2025-02-01", "to": "2025-01-01"}, "query"),
    ({"gpu_type": "H100", "from": "2020-01-01", "to": "2025-01-01"}, "query"),
    ({"gpu_type": "H100", "pricing": "free"}, "pricing"),
    ({"gpu_type": "H100", "colour": "red"}, "colour"),
]


@pytest.mark.parametrize("params,field", BAD_GPU_HISTORY, ids=[str(i) for i in range(len(BAD_GPU_HISTORY))])
async def test_gpu_history_bad_input(http, params, field):
    r = await http.get("/prices/history", params=params)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "validation_error" and err["trace_id"]
    assert field in {d["field"] for d in err["details"]}, err


async def test_offer_history_bad_input(http, history):
    r = await http.get("/providers/not-a-uuid/history")
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "id"
    r = await http.get(f"/providers/{uuid.uuid4()}/history")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    some = uuid.uuid4()
    for params, field in (({"limit": 0}, "limit"), ({"limit": 5000}, "limit"), ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
                          ({"cursor": "%%"}, "cursor"), ({"to": "2025-01-01", "from": "2025-02-01"}, "query")):
        r = await http.get(f"/providers/{some}/history", params=params)
        assert r.status_code == 422, (params, r.text)
        assert field in {d["field"] for d in r.json()["error"]["details"]}, (params, r.text)
