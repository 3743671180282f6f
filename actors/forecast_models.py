"""The forecasting models behind one interface: backtest windows plus the forecast from the end.

`predict_windows(name, series, horizon, n_windows, cfg)` takes relative series (each divided by its last
value, so every one ends at 1.0 and one fit serves many scales) and returns an array (n_series,
n_windows + 1, horizon): the rolling-origin backtest windows, oldest first, then the forecast past the end.
Window w starts `horizon * (n_windows - w)` days before the end and sees only the days before it.

- persistence: the last value before the origin.
- seasonal_naive: the value one week earlier (spot prices on GCP move weekly).
- autoets / autoarima / theta / drift (statsforecast AutoETS, AutoARIMA, AutoTheta, RandomWalkWithDrift):
  one fit before the first window, then the fitted model is carried
  forward over the windows without refitting (`refit=False`; the drift, which cannot be carried forward,
  is refitted per window); a second fit on all data for the forecast.
- nhits (neuralforecast, CPU): one network across all series, trained once on the data before the first
  window on log relative prices; the forecast past the end reuses it with the latest input window.

statsforecast, neuralforecast and torch are imported inside the functions that use them only.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

__all__ = ["ModelConfig", "predict_windows", "BASELINES", "FITTED", "ALL_MODELS"]

BASELINES = ("persistence", "seasonal_naive")
FITTED = ("autoets", "autoarima", "theta", "drift", "nhits")
STATSFORECAST = ("autoets", "autoarima", "theta", "drift")
ALL_MODELS = BASELINES + FITTED


@dataclass(frozen=True)
class ModelConfig:
    """Model sizes. The defaults are what the evaluation and `gpubroker forecast train` use; tests shrink them."""
    season: int = 7
    nhits_steps: int = 300          # 300 steps ~ 40 s on 2 cores for ~100 series
    nhits_input: int = 60
    nhits_batch: int = 32
    nhits_windows_batch: int = 256
    seed: int = 1
    n_jobs: int = 1


def _origins(n: int, horizon: int, n_windows: int) -> list[int]:
    return [n - horizon * (n_windows - w) for w in range(n_windows)] + [n]


def _baseline(name: str, series: list[np.ndarray], horizon: int, n_windows: int, cfg: ModelConfig) -> np.ndarray:
    out = np.full((len(series), n_windows + 1, horizon), np.nan)
    steps = np.arange(horizon)
    for i, v in enumerate(series):
        for w, o in enumerate(_origins(v.size, horizon, n_windows)):
            if name == "persistence":
                out[i, w] = v[o - 1]
            else:
                idx = o - cfg.season + (steps % cfg.season)
                out[i, w] = v[idx] if idx.min() >= 0 else v[o - 1]
    return out


def _long_frame(series: list[np.ndarray], log: bool = False):
    import pandas as pd

    end = pd.Timestamp("2000-01-01") + pd.Timedelta(days=10_000)  # a shared calendar; only order matters
    parts = []
    for i, v in enumerate(series):
        ds = pd.date_range(end=end, periods=v.size, freq="D")
        parts.append(pd.DataFrame({"unique_id": i, "ds": ds, "y": np.log(v) if log else v}))
    return pd.concat(parts, ignore_index=True), end


def _fill(out: np.ndarray, frame, column: str, end, horizon: int, n_windows: int, log: bool, final: bool) -> None:
    """Scatter a long prediction frame into out[series, window, step]."""
    import pandas as pd

    vals = frame[column].to_numpy(dtype=float)
    if log:
        vals = np.exp(vals)
    uid = frame["unique_id"].to_numpy().astype(int)
    ds = pd.to_datetime(frame["ds"])
    if final:
        step = ((ds - end).dt.days - 1).to_numpy()
        out[uid, n_windows, step] = vals
        return
    offset = ((ds - end).dt.days).to_numpy() + horizon * n_windows - 1  # 0 .. h*k-1 over the backtest span
    out[uid, offset // horizon, offset % horizon] = vals


def _statsforecast(name: str, series: list[np.ndarray], horizon: int, n_windows: int, cfg: ModelConfig) -> np.ndarray:
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, RandomWalkWithDrift

    model = {"autoets": lambda: AutoETS(season_length=1, alias=name),
             "autoarima": lambda: AutoARIMA(season_length=1, alias=name),
             "theta": lambda: AutoTheta(season_length=1, alias=name),
             "drift": lambda: RandomWalkWithDrift(alias=name)}[name]()
    df, end = _long_frame(series)
    out = np.full((len(series), n_windows + 1, horizon), np.nan)
    sf = StatsForecast(models=[model], freq="D", n_jobs=cfg.n_jobs)
    # refit per window only where statsforecast cannot carry a fitted model forward (the drift is a cheap mean)
    cv = sf.cross_validation(h=horizon, df=df, n_windows=n_windows, step_size=horizon,
                             refit=not hasattr(model, "forward"))
    _fill(out, cv, name, end, horizon, n_windows, False, final=False)
    fc = sf.forecast(h=horizon, df=df)
    _fill(out, fc, name, end, horizon, n_windows, False, final=True)
    return out


def _nhits(series: list[np.ndarray], horizon: int, n_windows: int, cfg: ModelConfig) -> np.ndarray:
    os.environ.setdefault("PYTORCH_LIGHTNING_DISABLE_PROGRESS_BAR", "1")
    for noisy in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "neuralforecast"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    import torch
    from neuralforecast import NeuralForecast
    from neuralforecast.models import NHITS

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model = NHITS(h=horizon, input_size=cfg.nhits_input, max_steps=cfg.nhits_steps, batch_size=cfg.nhits_batch,
                  windows_batch_size=cfg.nhits_windows_batch, scaler_type="identity", random_seed=cfg.seed,
                  start_padding_enabled=True, alias="nhits", accelerator="cpu", devices=1,
                  enable_progress_bar=False, enable_model_summary=False, logger=False, enable_checkpointing=False)
    df, end = _long_frame(series, log=True)
    nf = NeuralForecast(models=[model], freq="D")
    out = np.full((len(series), n_windows + 1, horizon), np.nan)
    cv = nf.cross_validation(df=df, n_windows=n_windows, step_size=horizon, refit=False, verbose=False)
    _fill(out, cv, "nhits", end, horizon, n_windows, True, final=False)
    fc = nf.predict(df=df)
    _fill(out, fc, "nhits", end, horizon, n_windows, True, final=True)
    return out


def predict_windows(name: str, series: list[np.ndarray], horizon: int, n_windows: int,
                    cfg: ModelConfig = ModelConfig()) -> np.ndarray:
    """Backtest windows and the forecast of model `name` for relative series (see the module doc)."""
    if not series:
        return np.zeros((0, n_windows + 1, horizon))
    if name in BASELINES:
        return _baseline(name, series, horizon, n_windows, cfg)
    if name in STATSFORECAST:
        return _statsforecast(name, series, horizon, n_windows, cfg)
    if name == "nhits":
        return _nhits(series, horizon, n_windows, cfg)
    raise ValueError(f"unknown model {name!r}; known: {', '.join(ALL_MODELS)}")
