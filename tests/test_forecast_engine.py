"""The backtest engine and the evaluation: no look-ahead, bands, model choice, the eval CLI's JSON."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from actors.forecast_backtest import FitSettings, SeriesData, fit_all
from actors.forecast_models import ModelConfig, predict_windows

ROOT = Path(__file__).resolve().parent.parent
FAST = FitSettings(horizon=30, n_windows=3, lookback=300, min_fit=120,
                   models=("persistence", "seasonal_naive", "autoets"), model=ModelConfig(nhits_steps=2))


def _steps(seed: int, n: int = 500, base: float = 2.0) -> np.ndarray:
    """A spot-like step series: a new price every 7 days, a mean-reverting walk."""
    rng = np.random.default_rng(seed)
    weekly = base * np.exp(np.cumsum(rng.normal(0, 0.03, n // 7 + 1)) * 0.5)
    return np.repeat(weekly, 7)[:n]


def _series(n: int = 500) -> dict[str, SeriesData]:
    out = {f"s{i}": SeriesData("spot", 1000, _steps(i, n)) for i in range(6)}
    out["flat"] = SeriesData("on_demand", 1000, np.full(n, 3.0))
    out["trend"] = SeriesData("spot", 1000, 1.0 + 0.004 * np.arange(n))   # a steady rise: models beat persistence
    out["short"] = SeriesData("spot", 1000 + n - 40, np.full(40, 1.2))
    return out


def test_no_look_ahead_a_planted_future_spike_changes_nothing():
    cutoff_end = 1000 + 400 - 1          # the models may see days up to here
    clean = _series()
    spiked = {k: SeriesData(s.group, s.start, s.values.copy()) for k, s in clean.items()}
    for s in spiked.values():
        after = cutoff_end + 1 - s.start
        s.values[after:] *= 10.0           # a tenfold spike right after the cutoff
    a = fit_all(clean, cutoff_end, FAST)
    b = fit_all(spiked, cutoff_end, FAST)
    assert a.keys() == b.keys() and "s0" in a
    for key in a:
        assert a[key].chosen == b[key].chosen
        assert a[key].backtest_mape == b[key].backtest_mape
        for m in FAST.models:
            np.testing.assert_array_equal(a[key].forecasts[m], b[key].forecasts[m])
            for band in ("lo80", "hi80", "lo95", "hi95"):
                np.testing.assert_array_equal(a[key].bands[m][band], b[key].bands[m][band])
    # and the last value the engine used is the one before the cutoff, not the spike
    assert a["s0"].last == clean["s0"].values[cutoff_end - 1000]


def test_choice_bands_flat_and_short_series():
    fits = fit_all(_series(), 1000 + 500 - 1, FAST)
    assert fits["flat"].chosen == "persistence" and fits["flat"].flat
    np.testing.assert_array_equal(fits["flat"].forecasts["persistence"], np.full(30, 3.0))
    assert fits["trend"].chosen == "autoets"
    assert fits["trend"].backtest_mape["autoets"] < fits["trend"].backtest_mape["persistence"]
    assert fits["trend"].forecasts["autoets"][-1] > fits["trend"].last
    assert fits["short"].chosen == "persistence" and "too little history" in fits["short"].warning
    for key, fit in fits.items():
        for m, point in fit.forecasts.items():
            b = fit.bands[m]
            assert np.all(b["lo95"] <= b["lo80"] + 1e-12) and np.all(b["lo80"] <= point + 1e-12)
            assert np.all(point <= b["hi80"] + 1e-12) and np.all(b["hi80"] <= b["hi95"] + 1e-12)
            w = (b["hi80"] - b["lo80"]) / point
            assert np.all(np.diff(w) >= -1e-12), (key, m)          # relative width never shrinks
    moving = fits["s0"].bands[fits["s0"].chosen]
    assert (moving["hi80"] - moving["lo80"])[-1] > (moving["hi80"] - moving["lo80"])[0] >= 0


def test_nhits_runs_across_series_on_cpu():
    series = [s.values[-200:] / s.values[-1] for s in _series().values() if s.values.size >= 200][:4]
    out = predict_windows("nhits", series, 10, 2, ModelConfig(nhits_steps=2, nhits_input=20, nhits_windows_batch=32))
    assert out.shape == (4, 3, 10) and np.isfinite(out).all()
    assert np.all(np.abs(out - 1) < 0.5)       # log-relative training keeps it near the last price


def test_training_frame_does_not_fill_a_stretch_nobody_watched():
    from actors.forecast_train import build_series
    from domain.price_series import day_index

    d0, end = date(2024, 1, 1), date(2025, 12, 1)
    gcp = [{"offer_id": "a", "day": d0 + timedelta(days=30 * k), "price": 1.0 + 0.1 * (k % 3)} for k in range(11)]
    gcp.append({"offer_id": "a", "day": end, "price": gcp[-1]["price"]})   # the catalog re-recorded at load
    live = [{"offer_id": "b", "day": d0 + timedelta(days=k), "price": 2.0} for k in range((end - d0).days + 1)]
    series, skipped = build_series(gcp + live, {"a": "spot", "b": "on_demand"}, day_index(end), False,
                                   sources={"a": "gcp", "b": "live"})
    a, b = series["a"], series["b"]
    # gcp: day 0..300 day by day, then the re-record continues the series (no 400 invented flat days)
    assert a.values.size == 302 and skipped == (end - d0).days - 301
    assert a.values[-1] == a.values[-2] == 1.1 and a.values[299] == 1.0 and a.values[300] == 1.1
    assert a.start + a.values.size - 1 == b.start + b.values.size - 1     # both end on the as-of day
    assert b.values.size == (end - d0).days + 1 and a.group == "spot" and a.observations == 12


def _write_csv(path: Path) -> None:
    start = date(2024, 1, 1)
    lines = ["date,provider,instance,gpu,gpu_count,region,price_type,price,days_since_snapshot"]
    for i in range(3):
        v = _steps(10 + i, 420)
        lines += [f"{start + timedelta(days=d)},gcp,a2-{i},a100,1,r{i},spot,{v[d]:.6f},0" for d in range(420)]
        lines += [f"{start + timedelta(days=d)},gcp,a2-{i},a100,1,r{i},ondemand,{3.0 + i:.6f},0" for d in range(420)]
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")


def test_eval_cli_json_last_line(tmp_path):
    csv = tmp_path / "history.csv.gz"
    _write_csv(csv)
    proc = subprocess.run([sys.executable, "-m", "deployments.cli", "forecast", "eval", "--history", str(csv),
                           "--horizon", "30", "--cutoffs", "2", "--models", "persistence,seasonal_naive", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=240, env={"PYTHONPATH": str(ROOT),
                                                                                      "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["horizon"] == 30 and report["cutoffs"] == ["2024-12-26", "2025-01-25"] and report["series"] == 6
    assert set(report["by_price_type"]) == {"spot", "ondemand"}
    for block in [*report["by_price_type"].values(), report["overall"]]:
        assert set(block) == {"models", "chosen", "persistence", "ratio"}
        assert set(block["models"]) == {"persistence", "seasonal_naive"}
        for figures in [*block["models"].values(), block["chosen"], block["persistence"]]:
            assert set(figures) == {"mape", "smape", "coverage80", "coverage95", "width80"}
    od = report["by_price_type"]["ondemand"]
    assert od["persistence"]["mape"] == 0.0 and od["ratio"] is None      # flat list prices: persistence is exact
    spot = report["by_price_type"]["spot"]
    assert spot["persistence"]["mape"] > 0 and spot["ratio"] == pytest.approx(spot["chosen"]["mape"] / spot["persistence"]["mape"], rel=1e-3)
    assert "MAPE" in proc.stdout


def test_eval_cli_bad_input(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("date,price\n2024-01-01,1.0\n")
    proc = subprocess.run([sys.executable, "-m", "deployments.cli", "forecast", "eval", "--history", str(bad)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and "missing column(s) provider, instance, gpu, region, price_type" in proc.stderr
