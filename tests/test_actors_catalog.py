"""ProviderAdapter/IngestWorker Ray actors, the bundled catalog load and GCP backfill (Ray Data), replay."""
from __future__ import annotations

import pytest

from actors.catalog import backfill_gcp_history, history_frame, load_catalog, parse_all
from actors.cli import run_replay
from actors.provider_actor import start_actors
from cluster.messaging import subject
from tests.ingest_fixtures import collect, ingestor  # noqa: F401
from tests.provider_server import ProviderServer


@pytest.fixture(scope="module")
async def server():
    s = await ProviderServer().start()
    yield s
    await s.stop()


async def test_adapter_actors_sync_and_report(ray_session, server, settings, database, nats_client, pg):
    cfg = settings.with_overrides(adapters_live=True, adapter_timeout_s=0.5, adapter_retries=0,
                                  adapter_base_urls={"vastai": server.url("ok"), "crusoe": server.url("fail")})
    handles = start_actors(cfg, ["vastai", "crusoe"], interval_s=3600, start=False, detached=False)
    ok = await handles["vastai"].sync_now.remote()
    assert ok["status"] == "ok" and ok["source"] == "live" and ok["stats"]["received"] > 400
    # crusoe has no live path of its own (Shadeform needs a key): snapshot served, degraded, says why
    other = await handles["crusoe"].sync_now.remote()
    assert other["status"] == "degraded" and "providers/shadeform#apikey" in other["last_error"]
    assert other["stats"]["received"] == 14
    st = await handles["vastai"].status.remote()
    assert st["provider"] == "vastai" and st["syncs"] == 1 and st["offers"] > 400
    assert st["last_sync_ts"] and st["latency_ms"] is not None and st["interval_s"] == 3600
    assert await handles["vastai"].start.remote(3600) is True
    assert (await handles["vastai"].status.remote())["running"] is True
    row = await pg.fetchrow("SELECT status, source FROM provider_health WHERE provider_id='crusoe'")
    assert tuple(row) == ("degraded", "snapshot")
    import ray

    for h in handles.values():
        ray.kill(h)


async def test_catalog_load_is_idempotent_and_backfill_runs_once(ingestor, pg):
    first = await load_catalog(ingestor, ["gcp", "lambdalabs", "nebius"])
    assert first["inserted"] >= 1688 + 4 + 7 and first["providers_loaded"] == 3
    again = await load_catalog(ingestor, ["gcp", "lambdalabs", "nebius"])
    assert again["providers_loaded"] == 0 and again["inserted"] == 0
    added = await backfill_gcp_history(pg)
    assert added > 5000
    assert await backfill_gcp_history(pg) == 0
    oldest = await pg.fetchval("SELECT min(h.recorded_at) FROM price_history h JOIN offers o ON o.id=h.offer_id "
                               "WHERE o.provider_id='gcp'")
    assert oldest.year == 2022
    health = await pg.fetchrow("SELECT status, source, offers FROM provider_health WHERE provider_id='lambdalabs'")
    assert tuple(health) == ("ok", "snapshot", 4)


def test_ray_data_paths_match_the_plain_ones(ray_session):
    names = ["azure", "lambdalabs"]
    with_ray, plain = parse_all(names, use_ray=True), parse_all(names, use_ray=False)
    assert {n: len(v[0]) for n, v in with_ray.items()} == {n: len(v[0]) for n, v in plain.items()} == \
        {"azure": 83, "lambdalabs": 4}
    assert len(history_frame(True)) == len(history_frame(False)) > 7000


async def test_replay_feeds_price_changes_through_the_pipeline(settings, database, nats_client, collect, pg):
    c = await collect(subject(settings, "prices", "primeintellect") + ".>")
    totals = await run_replay(settings, speed=0, limit=6, max_sleep_s=0, echo=lambda _m: None)
    assert totals["polls"] == 6 and totals["deltas"] > 20 and totals["published"] == totals["deltas"]
    assert len(await c.settle(totals["deltas"])) == totals["deltas"]
    assert await pg.fetchval("SELECT count(*) FROM offers WHERE provider_id='primeintellect'") >= 20


async def test_sync_command_prints_throughput_and_rejects_by_reason(settings, database, nats_client):
    from actors.cli import run_sync
    from actors.metrics import REJECTED

    lines: list[str] = []
    out = await run_sync(settings, ["runpod", "imwt"], echo=lines.append)
    assert [o.provider for o in out] == ["runpod", "imwt"] and all(o.status == "ok" for o in out)
    summary = next(line for line in lines if line.startswith("synced 2 providers"))
    assert "records/s" in summary and "inserted" in summary and "unchanged" in summary
    assert any(line == "rejected by reason: not_offered=8" for line in lines)
    assert REJECTED.labels("runpod", "not_offered")._value.get() >= 8
