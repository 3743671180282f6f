"""POST /ai/chat through the real Serve app on the CPU engine, over the providers' recorded catalogs
(ingested like a sync does): recommendations checked against the same query in SQL, explicit constraints,
follow-ups, relaxing, every bad input, SSE and the WebSocket `chat` message. Free text is never asserted."""
from __future__ import annotations

import asyncio
import json

import hcl2
import httpx
import pytest
import websockets

from tests.chat_fixtures import ingest_real, sql_cheapest
from tests.search_fixtures import wait_for
from tests.ws_fixtures import make_tenant, running_gateway, token_for

@pytest.fixture(scope="module")
async def real_catalog(serve_app, settings, pg, redis_client, nats_client):
    """The recorded catalogs, ingested for real; waits until chat answers from them."""
    await ingest_real(settings, pg, redis_client, nats_client)
    async with httpx.AsyncClient(base_url=serve_app, timeout=30) as c:
        async def ready():
            r = await c.post("/ai/chat", json={"prompt": "an L4 on gcp in europe-west4"})
            return r.status_code == 200 and r.json()["recommendations"]
        await wait_for(ready, timeout=60, interval=0.5)
    return serve_app


async def test_recommends_the_cheapest_real_offers_by_total_cost(http, pg, real_catalog):
    r = await http.post("/ai/chat", json={"prompt": "2x A100 80GB spot on gcp in europe-west4 for 10 hours"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["constraints"] == {**body["constraints"], "gpu_type": "A100 80GB", "gpu_count": 2, "providers": ["gcp"],
                                   "regions": ["europe-west4"], "pricing": "spot", "duration_hours": 10.0}
    expected = await sql_cheapest(pg, gpu_types=["A100-80GB-SXM", "A100-80GB-PCIe"], providers=["gcp"],
                                  regions=["europe-west4"], pricing=["spot", "interruptible"], min_count=2)
    assert expected, "the GCP recording has 80 GB A100 spot offers in europe-west4"
    got = [(x["offer_id"], x["price_per_hour"]) for x in body["recommendations"]]
    assert got == [(i, pytest.approx(p)) for i, p in expected]
    for rec in body["recommendations"]:
        assert rec["total_for_duration"] == pytest.approx(rec["price_per_hour"] * 10, abs=1e-4)
        assert rec["provider"] == "gcp" and rec["region"] == "europe-west4" and rec["gpu_count"] >= 2
        assert rec["last_updated"].endswith("Z") and rec["stale"] is False
    assert body["engine"] == "local"
    # the cost forecast is the Forecast deployment's answer for the top offer's series and the duration
    top = body["recommendations"][0]
    p = await http.post("/predict", json={"gpu_type": top["gpu_type"], "provider": top["provider"], "region": top["region"],
                                          "pricing": top["pricing"], "gpu_count": top["gpu_count"], "hours": 10})
    assert p.status_code == 200, p.text
    fc = p.json()
    assert body["forecast"] == {"hourly": pytest.approx(fc["hourly"]), "daily": pytest.approx(fc["daily"]),
                                "ci_low": pytest.approx(fc["ci_low"]), "ci_high": pytest.approx(fc["ci_high"]),
                                "degraded": False}
    total = body["forecast"]["hourly"] * 10  # the band bounds the total for the hours (rounded to 4 places)
    assert body["forecast"]["ci_low"] - 1e-3 <= total <= body["forecast"]["ci_high"] + 1e-3
    top_instance = await pg.fetchval("SELECT external_id FROM offers WHERE id = $1::uuid", got[0][0])
    vm = hcl2.loads(body["iac"]["terraform"])["resource"][0]['"google_compute_instance"']['"gpu"']
    assert vm["machine_type"] == f'"{top_instance.split(":")[0]}"'
    assert vm["scheduling"][0]["provisioning_model"] == '"SPOT"'
    assert body["summary"] and body["follow_up"] is None


async def test_explicit_constraints_win_over_the_prompt(http, pg, real_catalog):
    r = await http.post("/ai/chat", json={"prompt": "8x H100 in Europe for 3 days",
                                          "constraints": {"gpu_type": "l4", "gpu_count": 1, "countries": ["us"],
                                                          "continents": [], "providers": ["gcp"]}})
    body = r.json()
    c = body["constraints"]
    assert (c["gpu_type"], c["gpu_count"], c["countries"], c["continents"], c["duration_hours"]) == \
        ("L4", 1, ["US"], [], 72.0)
    assert any(a.startswith("gpu_type from the request body") for a in body["assumptions"])
    expected = await sql_cheapest(pg, gpu_types=["L4"], providers=["gcp"], countries=["US"], min_count=1)
    assert [(x["offer_id"], x["total_for_duration"]) for x in body["recommendations"]] == \
        [(i, pytest.approx(p * 72, abs=1e-4)) for i, p in expected]


async def test_vague_request_gets_one_follow_up_question(http, real_catalog):
    body = (await http.post("/ai/chat", json={"prompt": "something cheap please"})).json()
    assert body["follow_up"] and body["follow_up"].endswith("?")
    assert body["recommendations"] == [] and body["summary"] == body["follow_up"]


@pytest.mark.parametrize("prompt,words", [("a T4 with 80GB of GPU memory", "at most 16 GB"),
                                          ("H100 or A100 in Europe", "several GPU types"),
                                          ("4 L4 with nvlink", "no NVLink")])
async def test_contradictions_get_a_follow_up_not_an_error(http, real_catalog, prompt, words):
    r = await http.post("/ai/chat", json={"prompt": prompt})
    assert r.status_code == 200
    assert words in r.json()["follow_up"]


async def test_nothing_matches_says_which_limit_to_relax_with_the_nearest_offers(http, pg, real_catalog):
    body = (await http.post("/ai/chat", json={"prompt": "an L4 on gcp in europe-west4 under $0.01 per hour"})).json()
    assert body["recommendations"] == []
    assert body["follow_up"].startswith("Nothing matches all your limits")
    by_limit = {x["limit"]: x for x in body["relax"]}
    price = by_limit["max_price_per_hour"]
    expected = await sql_cheapest(pg, gpu_types=["L4"], providers=["gcp"], regions=["europe-west4"], min_count=1)
    assert [(o["offer_id"], o["price_per_hour"]) for o in price["offers"]] == [(i, pytest.approx(p)) for i, p in expected]


BAD = [
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   \n "}, "prompt"),
    ({"prompt": "x" * 4001}, "prompt"),
    ({}, "prompt"),
    ({"prompt": 42}, "prompt"),
    ({"prompt": "H100", "colour": "red"}, "colour"),
    ({"prompt": "H100", "constraints": {"gpu_type": "Z80"}}, "constraints.gpu_type"),
    ({"prompt": "H100", "constraints": {"gpu_count": 0}}, "constraints.gpu_count"),
    ({"prompt": "H100", "constraints": {"continents": ["XX"]}}, "constraints.continents"),
    ({"prompt": "H100", "constraints": {"pricing": "cheap"}}, "constraints.pricing"),
    ({"prompt": "H100", "constraints": {"max_price_per_hour": -1}}, "constraints.max_price_per_hour"),
    ({"prompt": "H100", "stream": "sometimes"}, "stream"),
]


@pytest.mark.parametrize("payload,field", BAD, ids=[f for _, f in BAD])
async def test_bad_input_is_422_in_the_error_format(http, payload, field):
    r = await http.post("/ai/chat", json=payload)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "validation_error" and err["trace_id"]
    assert field in [d["field"] for d in err["details"]]


async def test_malformed_json_is_422(http):
    r = await http.post("/ai/chat", content=b'{"prompt": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body"


def _sse_events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


async def test_sse_stream_sends_the_structured_part_first_then_the_summary_tokens(http, real_catalog):
    prompt = {"prompt": "cheapest RTX 4090 on vastai for 72 hours"}
    plain = (await http.post("/ai/chat", json=prompt)).json()
    r = await http.post("/ai/chat", json={**prompt, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = _sse_events(r.text)
    kinds = [k for k, _ in events]
    assert kinds[0] == "result" and kinds[-1] == "done" and set(kinds[1:-1]) == {"token"}
    result, done = events[0][1], events[-1][1]
    assert "summary" not in result
    assert [x["offer_id"] for x in result["recommendations"]] == [x["offer_id"] for x in plain["recommendations"]]
    assert result["constraints"] == plain["constraints"]
    assert "".join(d["text"] for k, d in events if k == "token") == done["summary"]
    assert done["engine"] == "local" and isinstance(done["degraded"], bool)


async def test_sse_bad_input_is_still_a_422(http):
    r = await http.post("/ai/chat", json={"prompt": "", "stream": True})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


async def test_websocket_chat_streams_the_same_answer(http, settings, pg, real_catalog):
    prompt = "an L4 on gcp in europe-west4 for 5 hours"
    plain = (await http.post("/ai/chat", json={"prompt": prompt})).json()
    gw = await running_gateway(settings)
    try:
        token = token_for(settings, await make_tenant(pg))
        async with websockets.connect(f"ws://127.0.0.1:{gw.port}/v1",
                                      additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            assert json.loads(await ws.recv())["type"] == "welcome"
            await ws.send(json.dumps({"type": "chat", "prompt": ""}))
            err = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert (err["type"], err["code"], err["details"][0]["field"]) == ("error", "invalid", "prompt")
            await ws.send(json.dumps({"type": "chat", "id": "q1", "prompt": prompt}))
            frames = []
            while not frames or frames[-1].get("event") != "done":
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 20)))
            await ws.send(json.dumps({"type": "ping", "nonce": "after"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["nonce"] == "after"
    finally:
        await gw.stop()
    assert all(f["type"] == "chat" and f["id"] == "q1" for f in frames)
    assert frames[0]["event"] == "result" and {f["event"] for f in frames[1:-1]} == {"token"}
    result = frames[0]["data"]
    assert [x["offer_id"] for x in result["recommendations"]] == [x["offer_id"] for x in plain["recommendations"]]
    assert "".join(f["text"] for f in frames[1:-1]) == frames[-1]["data"]["summary"]
