"""POST/GET /predict through Serve on the real GCP price history in PostgreSQL: persistence before any
model, training (Ray Data frame + Ray tasks) on that history, the response contract, bad input, the chart,
and a model reloaded in another process answering the same numbers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from actors.catalog import backfill_gcp_history, load_catalog
from actors.forecast_backtest import FitSettings
from actors.forecast_models import ModelConfig
from domain.forecast import ForecastError, ForecastRequest, ForecastResponse
from tests.search_fixtures import insert_offers

ROOT = Path(__file__).resolve().parent.parent
# statsforecast's random walk with drift is the fitted model here: AutoETS took 0.2 s a series (~30 s for the
# bundled history); the engine tests fit AutoETS and NHITS themselves
SMALL = FitSettings(horizon=30, n_windows=2, lookback=240, min_fit=90,
                    models=("persistence", "seasonal_naive", "drift"), model=ModelConfig(nhits_steps=2))
A100_SPOT = {"gpu_type": "A100", "region": "us-central1", "pricing": "spot"}
TREND_REGION = "fc-trend-1"


@pytest.fixture(scope="module")
async def history(serve_app, pg, settings, redis_client, nats_client):
    from actors.pipeline import Ingestor

    await load_catalog(Ingestor(settings, pg, redis=redis_client, js=nats_client.jetstream()), ["gcp"])
    await backfill_gcp_history(pg)
    base = {"gpu_memory_gb": None, "vcpu": None, "memory_gb": None, "storage_gb": None, "country": None,
            "continent": None, "availability": "up", "tags": []}
    await insert_offers(pg, [{"id": uuid.uuid4(), "provider_id": "fc-nohist", "external_id": "fc-1", "name": "B200 x1",
                              "gpu_type": "B200", "gpu_count": 1.0, "price_per_hour": 9.0, "price_per_gpu_hour": 9.0,
                              "pricing": "on_demand", "region": "fc-test-1", **base}])
    # a series a model should win on: a steady 0.4 %/day rise, recorded daily by its own provider up to now
    trend = [round(2.0 * (1 + 0.004 * k), 6) for k in range(300)]
    tid = uuid.uuid4()
    await insert_offers(pg, [{"id": tid, "provider_id": "fc-trend", "external_id": "fc-2", "name": "B200 x1",
                              "gpu_type": "B200", "gpu_count": 1.0, "price_per_hour": trend[-1],
                              "price_per_gpu_hour": trend[-1], "pricing": "spot", "region": TREND_REGION, **base}])
    now = datetime.now(timezone.utc)
    await pg.executemany("INSERT INTO price_history (offer_id, price_per_hour, availability, recorded_at) "
                         "VALUES ($1, $2, 'up', $3)",
                         [(tid, Decimal(str(p)), now - timedelta(days=len(trend) - 1 - k)) for k, p in enumerate(trend)])
    return await pg.fetchval("SELECT max((recorded_at AT TIME ZONE 'UTC')::date) FROM price_history")


async def _refresh():
    from ray import serve

    handle = serve.get_deployment_handle("Forecast", app_name="gpubroker")
    await handle.refresh.remote()
    return handle


async def test_before_training_persistence_answers_and_says_so(http, history):
    await _refresh()
    r = await http.post("/predict", json={**A100_SPOT, "horizon_days": 30})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "persistence" and "no trained model yet" in body["warning"]
    assert body["trained_at"] is None and body["history_points"] > 5
    assert [p["date"] for p in body["series"]] == [(history + timedelta(days=d)).isoformat() for d in range(1, 31)]
    assert body["gpu_type"].startswith("A100") and body["pricing"] == "spot" and body["region"] == "us-central1"
    assert len({p["price"] for p in body["series"]}) == 1     # persistence: one price
    assert body["series"][-1]["hi95"] > body["series"][-1]["price"] > body["series"][-1]["lo95"]
    widths = [p["hi80"] - p["lo80"] for p in body["series"]]
    assert widths == sorted(widths)


async def test_training_on_the_postgresql_history_then_served(http, history, settings, ray_session):
    from actors.forecast_train import train

    from cluster.forecast_store import load_latest

    stages = []
    out = await train(settings, SMALL, progress=lambda s, d, t: stages.append(s))
    assert out["series"] > 1000 and out["as_of"] == history.isoformat()
    assert sum(out["chosen"].values()) == out["series"] and out["chosen"]["persistence"] > 0
    # the GCP log ends in January and the catalog is recorded at load: those unwatched months are left out,
    # so the backtest windows hold real price changes (filled, every window was flat: persistence 0 % error)
    assert out["unwatched_days_skipped"] > 250
    await _refresh()
    version = load_latest(settings.state_dir)
    moving = [r for r in version.meta["series"] if not r["flat"] and r["baseline_mape"] is not None]
    assert sum(r["baseline_mape"] > 0 for r in moving) > 300
    # where a model wins the backtest it answers, and /predict says so
    r = await http.post("/predict", json={"gpu_type": "B200", "region": TREND_REGION})
    rising = r.json()
    assert r.status_code == 200 and rising["model"] == "drift", rising
    assert rising["backtest"]["mape"] < 0.98 * rising["backtest"]["baseline_mape"]
    assert rising["series"][-1]["price"] > rising["series"][0]["price"] > 2.0 * (1 + 0.004 * 299)
    assert {"fitted persistence", "fitted seasonal_naive", "fitted drift"} <= set(stages)   # one Ray task per model
    assert (settings.state_dir / "forecast" / "versions" / out["version"] / "series.npz").is_file()
    r = await http.post("/predict", json={**A100_SPOT, "hours": 100, "gpu_count": 1})
    assert r.status_code == 200, r.text
    body = ForecastResponse.model_validate(r.json()).model_dump(mode="json")
    assert body["model_version"] == out["version"] and body["trained_at"] is not None
    assert body["model"] in SMALL.models and len(body["series"]) == 30
    assert set(body["backtest"]) == {"mape", "coverage80", "baseline_mape"}
    assert body["backtest"]["baseline_mape"] is not None
    pts = body["series"]
    for p in pts:
        assert p["lo95"] <= p["lo80"] <= p["price"] <= p["hi80"] <= p["hi95"]
    assert pts[-1]["hi95"] - pts[-1]["lo95"] >= pts[0]["hi95"] - pts[0]["lo95"]
    mean = sum(p["price"] for p in pts) / 30
    assert body["hourly"] == pytest.approx(mean, rel=1e-6) and body["daily"] == pytest.approx(24 * mean, rel=1e-6)
    assert body["total_for_hours"] == pytest.approx(100 * mean, rel=1e-4)
    assert body["ci_low"] <= body["total_for_hours"] <= body["ci_high"]
    assert body["alternatives"] and all(a["hourly"] >= body["hourly"] for a in body["alternatives"])
    assert all(a["region"] == "us-central1" and a["pricing"] == "spot" for a in body["alternatives"])
    # without a region: the cheapest A100 spot anywhere, and the other regions as alternatives
    r = await http.post("/predict", json={"gpu_type": "A100 80GB", "pricing": "spot"})
    wide = r.json()
    assert r.status_code == 200 and wide["gpu_type"] == "A100-80GB-SXM"
    assert len({a["region"] for a in wide["alternatives"]}) > 3


@pytest.mark.parametrize("payload, status, code", [
    ({"gpu_type": "A100", "horizon_days": 0}, 422, "validation_error"),
    ({"gpu_type": "A100", "horizon_days": 31}, 422, "validation_error"),
    ({"gpu_type": "A100", "pricing": "cheap"}, 422, "validation_error"),
    ({"region": "us-central1"}, 422, "validation_error"),
    ({"gpu_type": "A100", "hours": -1}, 422, "validation_error"),
    ({"gpu_type": "H10"}, 404, "unknown_gpu"),
    ({"gpu_type": "A100", "region": "us-centrl1"}, 404, "unknown_region"),
    ({"gpu_type": "A100", "provider": "gpc"}, 404, "unknown_provider"),
])
async def test_bad_input(http, history, payload, status, code):
    r = await http.post("/predict", json=payload)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and "trace_id" in err
    if code == "unknown_gpu":
        assert any(n.startswith("H100") for n in err["details"]["closest"])
    if code == "unknown_region":
        assert "us-central1" in err["details"]["closest"]
    if code == "unknown_provider":
        assert "gcp" in err["details"]["closest"]


async def test_get_bad_input_and_too_little_history(http, history):
    r = await http.get("/predict", params={"gpu_type": "A100", "horizon_days": "abc"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    r = await http.get("/predict", params={"gpu_type": "A100", "horizon_days": 45})
    assert r.status_code == 422 and "horizon_days" in r.json()["error"]["message"]
    r = await http.get("/predict", params={"gpu_type": "B200", "region": "fc-test-1", "horizon_days": 3})
    body = r.json()
    assert r.status_code == 200 and body["model"] == "persistence" and body["history_points"] == 0
    assert "too little history" in body["warning"] or "no trained model" in body["warning"]
    assert [p["price"] for p in body["series"]] == [9.0, 9.0, 9.0]


async def test_chart_png(http, history):
    r = await http.get("/predict", params={**A100_SPOT, "format": "png"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n" and len(r.content) > 10_000


async def test_handle_method_for_other_deployments(history):
    handle = await _refresh()
    resp = await handle.forecast.remote(ForecastRequest(gpu_type="L4", pricing="on_demand", horizon_days=5))
    assert isinstance(resp, ForecastResponse) and resp.gpu_type == "L4" and len(resp.series) == 5
    with pytest.raises(ForecastError) as exc:
        await handle.forecast.remote(ForecastRequest(gpu_type="H10"))
    assert exc.value.status == 404 and exc.value.code == "unknown_gpu"


async def test_model_reloads_in_a_new_process_with_the_same_numbers(http, history, settings):
    r = await http.post("/predict", json={**A100_SPOT, "horizon_days": 30})
    served = r.json()
    assert served["model_version"] is not None
    script = (
        "import asyncio, json\n"
        "from cluster.settings import load_settings\n"
        "from cluster.repositories.price_history import forecast_offers, history_as_of, history_points\n"
        "from cluster.db import create_pool\n"
        "from deployments.forecast_service import ForecastService, build_catalog\n"
        "from domain.forecast import ForecastRequest\n"
        "s = load_settings()\n"
        "async def load():\n"
        "    pool = await create_pool(s, min_size=1, max_size=1)\n"
        "    a = await history_as_of(pool)\n"
        "    return await forecast_offers(pool), await history_points(pool, a), a\n"
        "svc = ForecastService(s, build_catalog(*asyncio.run(load())))\n"
        "svc.reload_model()\n"
        f"print(svc.forecast(ForecastRequest(**{A100_SPOT!r})).model_dump_json())\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GPUBROKER_DATABASE_URL": settings.database_url,
           "GPUBROKER_STATE_DIR": str(settings.state_dir)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    assert fresh["model_version"] == served["model_version"] and fresh["model"] == served["model"]
    assert fresh["series"] == served["series"] and fresh["hourly"] == served["hourly"]
    assert date.fromisoformat(fresh["series"][0]["date"]) == history + timedelta(days=1)


async def test_a_running_replica_picks_up_a_new_model_version(http, history, settings):
    """`gpubroker up` refreshes the replica from synchronous code; a version saved later is served without
    any call (the replica's own loop checks the store)."""
    import asyncio

    import ray

    from cluster.forecast_store import ARRAYS, load_latest, save_version

    # `gpubroker up` runs this step as a plain synchronous driver whose handles route on the caller's loop
    script = ("import json, ray\n"
              "from ray.serve._private import constants\n"
              f"ray.init(address={ray.get_runtime_context().gcs_address!r}, log_to_driver=False)\n"
              "assert constants.RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP is False\n"
              "from deployments.forecast_cli import refresh_replicas\n"
              "print(json.dumps(refresh_replicas()))\n"
              "import time; time.sleep(2)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
    proc = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", script], cwd=ROOT, env=env,
                                   capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "has been disabled" not in proc.stderr  # the handles' loop outlives the call
    status = json.loads(proc.stdout.strip().splitlines()[-1])
    assert status["offers"] > 1000 and status["series_with_history"] > 1000
    before = (await http.post("/predict", json=A100_SPOT)).json()
    v = load_latest(settings.state_dir)
    assert before["model_version"] == v.name
    rows = [{**r, **{a: v.arrays[a][i] * 2 for a in ARRAYS}} for i, r in enumerate(v.meta["series"])]
    name = await asyncio.to_thread(save_version, settings.state_dir, v.meta, rows)
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        after = (await http.post("/predict", json=A100_SPOT)).json()
        if after["model_version"] == name or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.5)
    assert after["model_version"] == name
    assert [p["price"] for p in after["series"]] == [pytest.approx(2 * p["price"], rel=1e-5) for p in before["series"]]
