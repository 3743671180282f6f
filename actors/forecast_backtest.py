"""Fit every model on daily series up to a cutoff, backtest them, choose per series, and forecast with bands.

`fit_all()` is the one engine behind training (`gpubroker forecast train`, the schedule) and the
evaluation (`gpubroker forecast eval`): it sees only the values up to `end_day` (it slices them first), so
nothing after a cutoff can reach a model, a backtest window, the choice or the bands.

Per series: the last `lookback` days, cut at the last level shift (a price move of more than 20 % in a
day) when at least `min_fit` days follow it; flat series (no change in that window) and series too short
for the backtest windows are answered by persistence without fitting; the rest are deduplicated up to
scale (instance sizes of one family move together) and fitted with each model. The model is chosen on its
rolling-origin backtest MAPE against persistence (`domain.forecast_rules.choose_model`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from actors.forecast_models import BASELINES, ModelConfig, predict_windows
from domain.forecast_rules import (bands, choose_model, conformal_quantiles, mape, persistence_residuals)
from domain.price_series import activity_class, is_flat, last_level_shift, relative_key

__all__ = ["SeriesData", "SeriesFit", "FitSettings", "fit_all"]

# runs (model name, relative series) jobs and returns one (n, k + 1, h) array per job
Runner = Callable[[list[tuple[str, list]], int, int, ModelConfig], list[np.ndarray]]


@dataclass
class SeriesData:
    """One daily as-of series: value of day `start + i` is values[i] (NaN before the first observation)."""
    group: str               # pooling group of the conformal bands: the price type (spot, ondemand)
    start: int               # day index of values[0]
    values: np.ndarray
    observations: int = 0    # recorded prices behind it (change points or snapshots)


@dataclass
class SeriesFit:
    """What the engine decided for one series at one cutoff (absolute prices, USD/h)."""
    chosen: str
    last: float
    points: int
    forecasts: dict[str, np.ndarray] = field(default_factory=dict)      # model -> (h,)
    bands: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    backtest_mape: dict[str, float] = field(default_factory=dict)
    coverage80: float | None = None
    flat: bool = False
    warning: str | None = None


@dataclass(frozen=True)
class FitSettings:
    horizon: int = 30
    n_windows: int = 4
    lookback: int = 400
    min_fit: int = 150
    shift_threshold: float = 0.2
    models: tuple[str, ...] = ("persistence", "seasonal_naive", "autoets", "autoarima", "nhits")
    model: ModelConfig = ModelConfig()


def local_runner(jobs: list[tuple[str, list]], horizon: int, n_windows: int, cfg: ModelConfig) -> list[np.ndarray]:
    """Every job in this process, one after the other."""
    return [predict_windows(name, series, horizon, n_windows, cfg) for name, series in jobs]


def _prepare(s: SeriesData, end_day: int, fs: FitSettings) -> tuple[np.ndarray, np.ndarray]:
    """(all values up to end_day without the leading gap, the window a model fits on)."""
    v = s.values[: max(0, end_day - s.start + 1)]
    first = np.flatnonzero(~np.isnan(v))
    v = v[first[0]:] if first.size else v[:0]
    fit = v[-fs.lookback:]
    cut = last_level_shift(fit, fs.shift_threshold)
    if cut is not None and fit.size - cut >= fs.min_fit:
        fit = fit[cut:]
    return v, fit


def _class_quantiles(residuals: dict[tuple, list[np.ndarray]], horizon: int) -> dict[tuple, dict]:
    out = {}
    for key, parts in residuals.items():
        r = np.concatenate([p.reshape(-1, horizon) for p in parts]) if parts else np.zeros((0, horizon))
        out[key] = conformal_quantiles(r)
    return out


def fit_all(series: dict[str, SeriesData], end_day: int, fs: FitSettings = FitSettings(),
            runner: Runner = local_runner, progress: Callable[[str], None] | None = None) -> dict[str, SeriesFit]:
    """Backtest, choose and forecast every series using only days up to `end_day` (see the module doc)."""
    h, k = fs.horizon, fs.n_windows
    keys = list(series)
    full, fits, fits_ok = {}, {}, {}
    for key in keys:
        v, fit = _prepare(series[key], end_day, fs)
        full[key], fits[key] = v, fit
        fits_ok[key] = fit.size >= k * h + 8 and not np.isnan(fit).any()
    moving = {key: fits_ok[key] and not is_flat(fits[key]) for key in keys}
    # baselines run on every series long enough for the windows; fitted models on the moving ones, once per
    # distinct relative path
    base_keys = [key for key in keys if fits_ok[key]]
    uniq: dict[bytes, int] = {}
    fit_keys = [key for key in keys if moving[key] and fits[key].size >= fs.min_fit]
    slot = {key: uniq.setdefault(relative_key(fits[key]), len(uniq)) for key in fit_keys}
    reps: list[np.ndarray] = [np.empty(0)] * len(uniq)
    for key in fit_keys:
        reps[slot[key]] = fits[key] / fits[key][-1]
    rel = [fits[key] / fits[key][-1] for key in base_keys]
    jobs = [(name, rel if name in BASELINES else reps) for name in fs.models]
    if progress:
        progress("fitting " + ", ".join(fs.models))
    results = runner(jobs, h, k, fs.model)
    preds: dict[str, dict[str, np.ndarray]] = {}
    for name, arr in zip(fs.models, results):
        if name in BASELINES:
            preds[name] = {key: arr[i] * fits[key][-1] for i, key in enumerate(base_keys)}
        else:
            preds[name] = {key: arr[slot[key]] * fits[key][-1] for key in fit_keys}
    # actuals of the backtest windows
    actual = {key: fits[key][fits[key].size - k * h:].reshape(k, h) for key in base_keys}
    # conformal residual pools per (model, group, activity class)
    pools: dict[tuple, list[np.ndarray]] = {}
    klass = {key: activity_class(full[key]) for key in keys}
    for key in keys:
        if full[key].size < 2:
            continue
        cls = (series[key].group, klass[key])
        pools.setdefault(("persistence",) + cls, []).append(persistence_residuals(full[key], h, stride=7))
        for name in fs.models:
            if name != "persistence" and key in preds[name]:
                p = preds[name][key][:k]
                pools.setdefault((name,) + cls, []).append(np.abs(actual[key] - p) / p)
    quant = _class_quantiles(pools, h)
    window_pools = {mk: np.stack(parts) for mk, parts in pools.items() if mk[0] != "persistence"}

    out: dict[str, SeriesFit] = {}
    for key in keys:
        v = full[key]
        s = series[key]
        if v.size == 0:
            continue
        last = float(v[-1])
        cls = (s.group, klass[key])
        fit = SeriesFit(chosen="persistence", last=last, points=s.observations or int(v.size), flat=not moving[key])
        if not fits_ok[key]:
            fit.warning = (f"too little history: {v.size} days up to the cutoff, the backtest needs {k * h + 8}; "
                           "answered by persistence")
        scores = {}
        for name in fs.models:
            p = preds[name].get(key)
            if p is None:
                continue  # no fitted model for this series: it answers like persistence
            scores[name] = mape(actual[key], p[:k]) if key in actual else float("nan")
        fit.backtest_mape = scores
        if moving[key]:
            fit.chosen = choose_model(scores)
        for name in fs.models:
            p = preds[name].get(key)
            point = p[k] if p is not None else np.full(h, last)
            qkey = (name,) + cls if p is not None and (name,) + cls in quant else ("persistence",) + cls
            q = quant.get(qkey) or {0.8: np.zeros(h), 0.95: np.zeros(h)}
            fit.forecasts[name] = point
            fit.bands[name] = bands(point, q)
        if "persistence" not in fit.forecasts:
            point = np.full(h, last)
            fit.forecasts["persistence"] = point
            fit.bands["persistence"] = bands(point, quant.get(("persistence",) + cls) or
                                             {0.8: np.zeros(h), 0.95: np.zeros(h)})
        fit.coverage80 = _backtest_coverage(fit.chosen, key, cls, preds, actual, quant, window_pools, k)
        out[key] = fit
    return out


def _backtest_coverage(chosen: str, key: str, cls: tuple, preds: dict, actual: dict, quant: dict,
                       window_pools: dict, k: int) -> float | None:
    """Share of this series' backtest days inside its 80 % band. A fitted model's band for window w is
    calibrated on the other windows only (cross-conformal), so the figure is not in-sample."""
    if key not in actual:
        return None
    a = actual[key]
    if chosen == "persistence" or chosen not in preds or key not in preds[chosen]:
        q = quant.get(("persistence",) + cls)
        if q is None:
            return None
        p = preds["persistence"][key][:k] if "persistence" in preds and key in preds["persistence"] else None
        if p is None:
            return None
        return float(np.mean(np.abs(a - p) <= q[0.8] * p + 1e-12))
    p = preds[chosen][key][:k]
    pool = window_pools.get((chosen,) + cls)
    inside = []
    for w in range(k):
        others = np.delete(pool, w, axis=1).reshape(-1, a.shape[1]) if pool is not None and k > 1 else None
        q = conformal_quantiles(others)[0.8] if others is not None else np.zeros(a.shape[1])
        inside.append(np.abs(a[w] - p[w]) <= q * p[w] + 1e-12)
    return float(np.mean(inside))
