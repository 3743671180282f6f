"""Pure forecasting rules: daily as-of series, level shifts, conformal bands, model choice, cutoffs, metrics."""
from __future__ import annotations

import math

import numpy as np

from domain.forecast_rules import (bands, backtest_origins, choose_model, conformal_quantiles, coverage, mape,
                                   monthly_cutoffs, persistence_residuals, smape, width)
from domain.price_series import asof_daily, is_flat, last_level_shift, relative_key, step_changes


def test_asof_daily_carries_the_last_observation_of_each_day():
    # irregular change points: day 2 twice (the later one wins), nothing on days 3..6
    days = np.array([2, 0, 2, 7])
    prices = np.array([1.5, 1.0, 1.6, 2.0])
    v = asof_daily(days, prices, -1, 8)
    assert np.isnan(v[0])
    assert v[1:].tolist() == [1.0, 1.0, 1.6, 1.6, 1.6, 1.6, 1.6, 2.0, 2.0]


def test_flat_steps_and_level_shift():
    v = np.array([4.0] * 10 + [3.0] * 10 + [3.1] * 5)   # a 25 % cut on day 10, then a small move
    assert not is_flat(v) and is_flat(v[:10]) and step_changes(v) == 2
    assert last_level_shift(v, 0.2) == 10
    assert last_level_shift(v[10:], 0.2) is None
    assert relative_key(v * 2) == relative_key(v) != relative_key(v[::-1])


def test_conformal_quantiles_widen_with_the_horizon_and_bands_hold_the_point():
    rng = np.random.default_rng(3)
    steps = np.arange(1, 31)
    residuals = np.abs(rng.normal(0, 0.01, (400, 30))) * np.sqrt(steps)  # error grows with the step
    q = conformal_quantiles(residuals)
    assert np.all(np.diff(q[0.8]) >= 0) and np.all(np.diff(q[0.95]) >= 0)
    assert np.all(q[0.95] >= q[0.8]) and q[0.8][-1] > 3 * q[0.8][0]
    # finite-sample level: the 80 % quantile covers at least 80 % of its own calibration sample
    assert np.mean(residuals <= q[0.8]) >= 0.8
    point = np.full(30, 2.5)
    b = bands(point, q)
    assert np.all(b["lo95"] <= b["lo80"]) and np.all(b["lo80"] <= point) and np.all(point <= b["hi80"])
    assert np.all(b["hi80"] <= b["hi95"])
    assert np.all(np.diff(b["hi80"] - b["lo80"]) >= 0) and (b["hi80"] - b["lo80"])[-1] > (b["hi80"] - b["lo80"])[0]


def test_persistence_residuals_are_relative_j_day_changes():
    v = np.array([1.0, 1.0, 2.0, 2.0])
    r = persistence_residuals(v, 2)
    assert r[0].tolist() == [0.0, 1.0] and r[1].tolist() == [1.0, 1.0]
    assert r[2, 0] == 0.0 and math.isnan(r[2, 1])
    assert persistence_residuals(v, 2, stride=2)[:, 0].tolist() == [0.0, 0.0]   # origins 0 and 2 (the newest kept)


def test_choose_model_needs_to_beat_persistence():
    assert choose_model({"persistence": 2.0, "autoets": 1.5, "nhits": 1.8}) == "autoets"
    assert choose_model({"persistence": 2.0, "autoets": 1.99}) == "persistence"   # within the margin
    assert choose_model({"persistence": 0.0, "autoets": 0.0}) == "persistence"
    assert choose_model({"persistence": 1.0, "autoets": float("nan")}) == "persistence"


def test_cutoffs_and_origins():
    assert monthly_cutoffs(0, 400, 30, 3, 100) == [311, 341, 371]
    assert monthly_cutoffs(0, 400, 30, 20, 300) == [311, 341, 371]   # none leaves less than 300 days of history
    assert backtest_origins(99, 10, 3) == [70, 80, 90]


def test_metrics():
    a, p = np.array([100.0, 200.0]), np.array([110.0, 180.0])
    assert mape(a, p) == 10.0
    assert round(smape(a, p), 4) == round((10 / 105 + 20 / 190) / 2 * 100, 4)
    assert coverage(a, p - 10, p + 5) == 0.5
    assert round(width(p, p * 0.9, p * 1.1), 9) == 20.0


def test_activity_class_counts_last_year_changes():
    from domain.price_series import activity_class

    assert activity_class(np.full(500, 2.0)) == "flat"
    assert activity_class(np.r_[np.full(300, 2.0), np.full(200, 1.8)]) == "low"
    assert activity_class(np.repeat(np.arange(1.0, 20.0), 20)) == "high"
    assert activity_class(np.r_[np.full(10, 3.0), np.full(400, 2.0)]) == "flat"   # the cut was over a year ago


def test_observed_axis_skips_a_stretch_nobody_watched():
    from domain.price_series import asof_on_axis, observed_axis

    # records on days 0, 10 and 20, then nothing until a re-record on day 400 (the end)
    axis = observed_axis(np.array([0, 10, 20, 400]), 400, max_gap=120)
    assert axis.tolist() == list(range(0, 21)) + [400]
    v = asof_on_axis(np.array([0, 10, 20, 400]), np.array([1.0, 1.2, 0.9, 0.9]), axis)
    assert v.size == 22 and v[-2:].tolist() == [0.9, 0.9] and v[10] == 1.2
    # quiet stretches up to max_gap are watched: forward-filled day by day, and the end extends the axis
    assert observed_axis(np.array([0, 100]), 130, max_gap=120).tolist() == list(range(0, 131))
    assert observed_axis(np.array([5, 300]), 301, max_gap=120).tolist() == [5, 300, 301]
