"""Price histories as daily series: irregular change points to a daily as-of step function, and its traits.

Provider list prices change rarely (GCP on-demand: a few times a year) and are recorded only when they
change (`price_history` holds change points) or at irregular snapshots (~weekly in the GCP history).
Every model here works on one value per UTC day: the price in effect at the end of that day, the last
observation at or before it (as-of, forward fill). Numpy only.
"""
from __future__ import annotations

from datetime import date, timedelta

import numpy as np

__all__ = ["asof_daily", "activity_class", "is_flat", "last_level_shift", "relative_key", "step_changes", "day_index"]

EPOCH = date(1970, 1, 1)


def day_index(d: date) -> int:
    """Days since 1970-01-01 (an integer axis for daily series)."""
    return (d - EPOCH).days


def from_day_index(i: int) -> date:
    return EPOCH + timedelta(days=int(i))


def asof_daily(days: np.ndarray, prices: np.ndarray, start: int, end: int) -> np.ndarray:
    """Daily values for days start..end (inclusive, day indexes): the last price observed on or before each day.

    `days` (day index of each observation, any order, duplicates allowed: the last one of a day wins) and
    `prices` are parallel. Days before the first observation are NaN.
    """
    days = np.asarray(days, dtype=np.int64)
    prices = np.asarray(prices, dtype=np.float64)
    out = np.full(end - start + 1, np.nan)
    if days.size == 0 or end < start:
        return out
    order = np.argsort(days, kind="stable")
    days, prices = days[order], prices[order]
    axis = np.arange(start, end + 1)
    pos = np.searchsorted(days, axis, side="right") - 1
    ok = pos >= 0
    out[ok] = prices[pos[ok]]
    return out


def is_flat(values: np.ndarray, rtol: float = 1e-9) -> bool:
    """True when the (non-NaN) values never change: a list price that held through the window."""
    v = values[~np.isnan(values)]
    return v.size == 0 or bool(np.all(np.abs(v - v[-1]) <= rtol * np.abs(v[-1])))


def step_changes(values: np.ndarray) -> int:
    """Number of days on which the price differs from the day before."""
    v = values[~np.isnan(values)]
    return int(np.count_nonzero(np.diff(v))) if v.size > 1 else 0


def last_level_shift(values: np.ndarray, threshold: float = 0.2) -> int | None:
    """Index of the last day whose price moved by more than `threshold` (relative) from the day before.

    A price cut of that size starts a new regime; models fit on the segment after it when it is long enough.
    """
    v = np.asarray(values, dtype=np.float64)
    prev, cur = v[:-1], v[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(cur / prev - 1.0)
    hits = np.flatnonzero(np.nan_to_num(rel, nan=0.0) > threshold)
    return int(hits[-1] + 1) if hits.size else None


def relative_key(values: np.ndarray, decimals: int = 6) -> bytes:
    """Identity of a series up to scale: instance sizes of one family (1, 2, 4, 8 GPUs) share the same
    relative path, so one model fit serves all of them."""
    v = np.asarray(values, dtype=np.float64)
    return np.round(v / v[-1], decimals).tobytes()


def activity_class(values: np.ndarray, days: int = 365) -> str:
    """How often the price moved in the last `days` days: 'flat' (never), 'low' (1-4 changes), 'high' (5+).

    Conformal bands are pooled per class: a spot price re-set every few weeks and a list price cut once a
    year need different widths, and pooling them would give the first too narrow a band."""
    n = step_changes(np.asarray(values, float)[-days:])
    return "flat" if n == 0 else ("low" if n <= 4 else "high")
