"""Price histories as daily series: irregular change points to a daily as-of step function, and its traits.

Provider list prices change rarely (GCP on-demand: a few times a year) and are recorded only when they
change (`price_history` holds change points) or at irregular snapshots (~weekly in the GCP history).
Every model here works on one value per UTC day: the price in effect at the end of that day, the last
observation at or before it (as-of, forward fill). Numpy only.

Forward fill is only honest while someone was watching: the bundled GCP log ends in January 2026 and the
catalog snapshot is stored at load time, so filling the unwatched months in between invents a flat stretch
and moves the whole backtest into it (every model ties persistence at 0 % error, and the newest point sits
after a silent gap). `observed_axis` therefore drops the days of a stretch longer than `max_gap` in which
no price of any series was recorded: the next observation continues the series the day after the last one.
"""
from __future__ import annotations

from datetime import date, timedelta

import numpy as np

__all__ = ["asof_daily", "asof_on_axis", "observed_axis", "MAX_SILENT_GAP", "activity_class", "is_flat", "last_level_shift", "relative_key", "step_changes", "day_index"]

EPOCH = date(1970, 1, 1)
# Longest stretch (days) without any recorded price that still counts as watched: the GCP log's quiet
# stretches since 2023 are at most 108 days (a full log of ~900 series records something monthly).
MAX_SILENT_GAP = 120


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
    return asof_on_axis(days, prices, np.arange(start, end + 1))


def observed_axis(days: np.ndarray, end: int, max_gap: int = MAX_SILENT_GAP) -> np.ndarray:
    """The days (day indexes, ascending) a daily series is built on: from the first observation to `end`,
    without the inner days of any stretch longer than `max_gap` days in which nothing was recorded.

    `days` are the observation days of every series of a source (one watcher): a stretch without any of
    them is a stretch nobody watched, not a stretch in which prices held."""
    u = np.unique(np.append(np.asarray(days, dtype=np.int64), end))
    u = u[u <= end]
    if u.size == 0:
        return u
    keep = [np.arange(u[0], u[0] + 1)]
    for a, b in zip(u[:-1], u[1:]):
        keep.append(np.array([b]) if b - a > max_gap else np.arange(a + 1, b + 1))
    return np.concatenate(keep)


def asof_on_axis(days: np.ndarray, prices: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """The as-of value (last price on or before the day) on each day of `axis`; NaN before the first."""
    days = np.asarray(days, dtype=np.int64)
    prices = np.asarray(prices, dtype=np.float64)
    out = np.full(len(axis), np.nan)
    if days.size == 0:
        return out
    order = np.argsort(days, kind="stable")
    days, prices = days[order], prices[order]
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
