"""Pure forecasting rules: error metrics, rolling-origin splits, conformal bands and the choice of model.

Intervals are split-conformal on absolute relative residuals |actual - forecast| / forecast, pooled per
group (price type and activity class: flat, low or high by the price changes of the last year) and per
horizon day; the quantile uses the finite-sample level ceil((n + 1) * level) / n, and the bands are made
non-decreasing in the horizon (a running max), so they always contain the point forecast and widen with it. Persistence's residuals come from every daily
origin of the training history (its "empirical interval"); a fitted model's from its backtest windows.
Numpy only.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

__all__ = ["mape", "smape", "coverage", "width", "monthly_cutoffs", "conformal_quantiles",
           "persistence_residuals", "bands", "choose_model", "LEVELS", "scores"]

LEVELS = (0.8, 0.95)
# A model must beat persistence's backtest MAPE by this share to be chosen: on step series, ties and
# hair-breadth wins are noise (a flat forecast from a model scores exactly persistence's error).
CHOICE_MARGIN = 0.02


def mape(actual: np.ndarray, pred: np.ndarray) -> float:
    """Mean absolute percentage error in percent (NaN pairs ignored)."""
    a, p = np.asarray(actual, float), np.asarray(pred, float)
    ok = ~(np.isnan(a) | np.isnan(p)) & (a != 0)
    return float(np.mean(np.abs(a[ok] - p[ok]) / np.abs(a[ok])) * 100) if ok.any() else float("nan")


def smape(actual: np.ndarray, pred: np.ndarray) -> float:
    """Symmetric MAPE in percent: |a - p| / ((|a| + |p|) / 2)."""
    a, p = np.asarray(actual, float), np.asarray(pred, float)
    d = (np.abs(a) + np.abs(p)) / 2
    ok = ~(np.isnan(a) | np.isnan(p)) & (d != 0)
    return float(np.mean(np.abs(a[ok] - p[ok]) / d[ok]) * 100) if ok.any() else float("nan")


def coverage(actual: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share (0..1) of actual values inside [lo, hi]."""
    a = np.asarray(actual, float)
    ok = ~np.isnan(a)
    return float(np.mean((a[ok] >= lo[ok] - 1e-12) & (a[ok] <= hi[ok] + 1e-12))) if ok.any() else float("nan")


def width(pred: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Mean band width in percent of the point forecast."""
    p = np.asarray(pred, float)
    ok = ~np.isnan(p) & (p != 0)
    return float(np.mean((hi[ok] - lo[ok]) / np.abs(p[ok])) * 100) if ok.any() else float("nan")


def scores(actual: np.ndarray, pred: np.ndarray, lo80: np.ndarray, hi80: np.ndarray,
           lo95: np.ndarray, hi95: np.ndarray) -> dict[str, float]:
    """The evaluation's figures for one model: mape, smape, coverage80, coverage95, width80."""
    return {"mape": mape(actual, pred), "smape": smape(actual, pred), "coverage80": coverage(actual, lo80, hi80),
            "coverage95": coverage(actual, lo95, hi95), "width80": width(pred, lo80, hi80)}


def monthly_cutoffs(first_day: int, last_day: int, horizon: int, n: int, min_train: int) -> list[int]:
    """N cutoffs (day indexes, the first forecast day) 30 days apart, the latest leaving a whole horizon of
    actuals before `last_day`, none leaving less than `min_train` days of history. Ascending."""
    latest = last_day - horizon + 1
    out = [latest - 30 * k for k in range(n)]
    return sorted(c for c in out if c - first_day >= min_train)


def backtest_origins(end: int, horizon: int, n_windows: int) -> list[int]:
    """Origins (first forecast day) of `n_windows` back-to-back windows of `horizon` days ending at `end`
    (inclusive): all inside the training data, the newest ending on its last day."""
    return [end + 1 - horizon * (n_windows - w) for w in range(n_windows)]


def persistence_residuals(values: np.ndarray, horizon: int, max_origins: int | None = None,
                          stride: int = 1) -> np.ndarray:
    """Absolute relative j-day changes |v[t+j] / v[t] - 1| for j = 1..horizon at every `stride`-th origin t
    of the last `max_origins` days (all when None): shape (origins, horizon), NaN where out of range.

    A series flat in its recent window still has its older changes here (a list price cut two years ago
    is evidence that list prices get cut), so its band is not zero by construction."""
    v = np.asarray(values, float)
    n = v.size
    first = 0 if max_origins is None else max(0, n - max_origins - horizon)
    starts = np.arange(n - 2, first - 1, -stride)[::-1] if n > 1 else np.arange(0)
    out = np.full((starts.size, horizon), np.nan)
    for j in range(1, horizon + 1):
        ok = starts + j < n
        out[ok, j - 1] = np.abs(v[starts[ok] + j] / v[starts[ok]] - 1.0)
    return out


def conformal_quantiles(residuals: np.ndarray, levels: Iterable[float] = LEVELS) -> dict[float, np.ndarray]:
    """Per horizon day, the conformal quantile of pooled absolute relative residuals (rows: samples,
    columns: horizon days), made non-decreasing along the horizon. Zero where there is no sample."""
    r = np.asarray(residuals, float)
    if r.ndim == 1:
        r = r[:, None]
    out: dict[float, np.ndarray] = {}
    for level in levels:
        q = np.zeros(r.shape[1])
        for j in range(r.shape[1]):
            col = r[:, j][~np.isnan(r[:, j])]
            if col.size:
                k = min(1.0, math.ceil((col.size + 1) * level) / col.size)
                q[j] = float(np.quantile(col, k, method="higher"))
        out[level] = np.maximum.accumulate(q)
    return out


def bands(point: np.ndarray, quantiles: dict[float, np.ndarray]) -> dict[str, np.ndarray]:
    """lo80/hi80/lo95/hi95 around a point forecast from relative conformal quantiles (never below 0)."""
    p = np.asarray(point, float)
    h = p.shape[-1]
    out = {}
    for level, name in ((0.8, "80"), (0.95, "95")):
        q = quantiles[level][:h]
        out["lo" + name] = np.maximum(p * (1 - q), 0.0)
        out["hi" + name] = p * (1 + q)
    return out


def choose_model(backtest_mape: dict[str, float], baseline: str = "persistence",
                 margin: float = CHOICE_MARGIN) -> str:
    """The model with the lowest backtest MAPE if it beats the baseline's by `margin`; else the baseline."""
    base = backtest_mape.get(baseline, float("nan"))
    best, best_err = baseline, base
    for name, err in backtest_mape.items():
        if name == baseline or err is None or math.isnan(err):
            continue
        if (math.isnan(base) or err < base * (1 - margin)) and (math.isnan(best_err) or err < best_err):
            best, best_err = name, err
    return best
