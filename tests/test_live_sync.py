"""Live fetch paths against a local server of recorded responses; failures become degraded health;
the /providers/health endpoint on the real Serve app."""
from __future__ import annotations

import pytest

from actors.sync import sync_provider
from adapters import registry
from adapters.base import CircuitBreaker, CircuitOpen, FetchError
from cluster.secrets import EnvFileSecrets
from tests.ingest_fixtures import ingestor  # noqa: F401
from tests.provider_server import RUNPOD_KEY, ProviderServer

SECRETS = EnvFileSecrets(environ={"GPUBROKER_SECRET_PROVIDERS_RUNPOD_APIKEY": RUNPOD_KEY})


@pytest.fixture(scope="module")
async def server():
    s = await ProviderServer().start()
    yield s
    await s.stop()


def _live(settings, **urls):
    return settings.with_overrides(adapters_live=True, adapter_base_urls=urls, adapter_timeout_s=0.5,
                                   adapter_retries=1)


@pytest.mark.parametrize("name", ["azure", "runpod", "vastai"])
async def test_live_fetch_parses_like_the_recording(server, settings, name):
    adapter = registry.build(name, _live(settings, **{name: server.url("ok")}), SECRETS)
    raw = await adapter.fetch()
    live = adapter.parse(raw)
    recorded = adapter.parse(adapter.load_snapshot())
    assert len(live.offers) > 50
    assert sorted(o.external_id for o in live.offers) == sorted(o.external_id for o in recorded.offers)
    assert adapter.breaker.state == "closed"


async def test_runpod_without_its_key_is_refused_by_the_api(server, settings):
    adapter = registry.build("runpod", _live(settings, runpod=server.url("ok")),
                             EnvFileSecrets(environ={"GPUBROKER_SECRET_PROVIDERS_RUNPOD_APIKEY": "wrong"}))
    with pytest.raises(FetchError, match="HTTP 401"):
        await adapter.fetch()


async def test_retries_then_circuit_opens_without_calling_the_api(server, settings):
    adapter = registry.build("azure", _live(settings, azure=server.url("fail")), SECRETS,
                             breaker=CircuitBreaker(threshold=2, reset_s=60))
    before = server.hits["fail"]
    for _ in range(2):
        with pytest.raises(FetchError, match="HTTP 500"):
            await adapter.fetch()
    assert server.hits["fail"] - before == 4  # 1 try + 1 retry, twice
    with pytest.raises(CircuitOpen):
        await adapter.fetch()
    assert server.hits["fail"] - before == 4
    assert adapter.breaker.state == "open"


async def test_failing_providers_are_degraded_while_the_others_sync(server, settings, ingestor, pg):
    cfg = _live(settings, azure=server.url("fail"), runpod=server.url("slow"), vastai=server.url("ok"))
    outcomes = {}
    for name in ("azure", "runpod", "vastai"):
        outcomes[name] = await sync_provider(registry.build(name, cfg, SECRETS), ingestor, live=True)
    assert outcomes["vastai"].status == "ok" and outcomes["vastai"].source == "live"
    assert outcomes["vastai"].stats.received > 400
    assert outcomes["azure"].status == "degraded" and "HTTP 500" in outcomes["azure"].last_error
    assert outcomes["runpod"].status == "degraded" and "timeout" in outcomes["runpod"].last_error
    health = {r["provider_id"]: r for r in await pg.fetch(
        "SELECT * FROM provider_health WHERE provider_id = ANY($1)", ["azure", "runpod", "vastai"])}
    assert health["vastai"]["status"] == "ok" and health["vastai"]["last_error"] is None
    assert health["vastai"]["offers"] > 400 and health["vastai"]["source"] == "live"
    assert health["azure"]["status"] == "degraded" and "HTTP 500" in health["azure"]["last_error"]
    assert health["runpod"]["status"] == "degraded" and "timeout" in health["runpod"]["last_error"]
    # a failing provider keeps the offers it has (an outage is not evidence they vanished)
    n_azure = await pg.fetchval("SELECT count(*) FROM offers WHERE provider_id='azure' AND availability='up'")
    again = await sync_provider(registry.build("azure", cfg, SECRETS), ingestor, live=True)
    assert again.status == "degraded" and again.stats is None
    assert await pg.fetchval("SELECT count(*) FROM offers WHERE provider_id='azure' AND availability='up'") == n_azure


async def test_health_endpoint_reports_every_adapter(http, server, settings, ingestor):
    cfg = _live(settings, azure=server.url("fail"), vastai=server.url("ok"))
    for name in ("azure", "vastai"):
        await sync_provider(registry.build(name, cfg, SECRETS), ingestor, live=True)
    r = await http.get("/providers/health")
    assert r.status_code == 200, r.text
    body = r.json()
    items = {i["provider"]: i for i in body["providers"]}
    assert set(registry.names()) <= set(items)
    for i in items.values():
        assert i["status"] in ("ok", "degraded", "down")
        assert {"provider", "status", "last_sync_ts", "last_error", "latency_ms", "offers"} <= set(i)
    assert items["vastai"]["status"] == "ok" and items["vastai"]["offers"] > 400
    assert items["vastai"]["last_sync_ts"] and items["vastai"]["latency_ms"] is not None
    assert items["azure"]["status"] == "degraded" and "HTTP 500" in items["azure"]["last_error"]
    never = [i for n, i in items.items() if n in ("amaya", "evergreen") and i["offers"] == 0]
    assert all(i["status"] == "degraded" and i["last_error"] for i in never)
    assert body["status"] in ("degraded", "down")


async def test_health_is_degraded_not_5xx_when_the_health_store_is_unreachable(settings):
    """A real connection failure (nothing listens on port 1), not a mock: 200, every adapter degraded."""
    import httpx

    from cluster.runtime import Runtime
    from deployments.ingress import create_app

    broken = settings.with_overrides(database_url="postgresql://postgres@127.0.0.1:1/nowhere")
    app = create_app(Runtime(broken))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/providers/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "degraded" and len(body["providers"]) == len(registry.names())
    assert all(p["status"] == "degraded" and "health store unavailable" in p["last_error"] for p in body["providers"])


def test_assess_unknown_and_stale_states_are_degraded_with_a_reason():
    from datetime import datetime, timedelta, timezone

    from deployments.api_providers_health import _assess

    now = datetime.now(timezone.utc)
    assert _assess(None, "x", 300, now).status == "degraded"
    row = {"name": "X", "status": "ok", "last_sync_ts": now - timedelta(hours=2), "last_error": None,
           "latency_ms": 5.0, "offers": 3, "source": "live", "details": {}}
    stale = _assess(row, "x", 300, now)
    assert stale.status == "degraded" and stale.last_error.startswith("stale")
    assert _assess({**row, "last_sync_ts": now}, "x", 300, now).status == "ok"
    weird = _assess({**row, "status": "exploded"}, "x", 300, now)
    assert weird.status == "degraded" and "unknown stored status" in weird.last_error
