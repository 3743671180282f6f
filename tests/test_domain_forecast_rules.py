"""Forecast rules (domain.forecast_rules, domain.price_series) at their edges: what metrics ignore, inclusive
bounds, the finite-sample conformal level, band clipping and the persistence margin."""
from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest

from domain.forecast_rules import (LEVELS, bands, choose_model, conformal_quantiles, coverage, mape, monthly_cutoffs,
                                   persistence_residuals, scores, smape, width)
from domain.price_series import (activity_class, asof_daily, day_index, from_day_index, is_flat, last_level_shift,
                                 relative_key, step_changes)

NAN = float("nan")


def test_mape_ignores_nan_pairs_and_zero_actuals():
    assert mape(np.array([100.0, NAN, 0.0, 50.0]), np.array([90.0, 10.0, 5.0, NAN])) == 10.0
    assert mape(np.array([-100.0]), np.array([-90.0])) == 10.0   # relative to |actual|
    assert math.isnan(mape(np.array([0.0, NAN]), np.array([1.0, 1.0])))


def test_smape_ignores_pairs_with_nothing_to_compare():
    assert smape(np.array([0.0, 100.0]), np.array([0.0, 300.0])) == 100.0   # (0, 0) is skipped, not 0 %
    assert smape(np.array([-10.0]), np.array([10.0])) == 200.0
    assert math.isnan(smape(np.array([NAN]), np.array([1.0])))


def test_coverage_bounds_are_inclusive_and_nan_actuals_do_not_count():
    a = np.array([1.0, 2.0, 3.0, NAN])
    lo, hi = np.array([1.0, 2.5, 0.0, 0.0]), np.array([1.0, 3.0, 3.0, 9.0])
    assert coverage(a, lo, hi) == pytest.approx(2 / 3)
    assert math.isnan(coverage(np.array([NAN]), np.array([0.0]), np.array([1.0])))


def test_width_is_relative_to_the_point_and_skips_zero_points():
    p = np.array([2.0, 0.0, NAN])
    assert width(p, np.array([1.0, -1.0, 0.0]), np.array([3.0, 1.0, 1.0])) == 100.0
    assert width(np.array([-2.0]), np.array([-3.0]), np.array([-1.0])) == 100.0
    assert math.isnan(width(np.array([0.0]), np.array([0.0]), np.array([1.0])))


def test_scores_name_each_figure():
    a, p = np.array([100.0, 200.0]), np.array([110.0, 180.0])
    s = scores(a, p, p - 10, p + 5, p - 30, p + 30)
    assert s == {"mape": 10.0, "smape": smape(a, p), "coverage80": 0.5, "coverage95": 1.0,
                 "width80": pytest.approx((15 / 110 + 15 / 180) / 2 * 100)}


def test_cutoffs_keep_exactly_min_train_days_of_history():
    assert monthly_cutoffs(0, 129, 30, 3, 100) == [100]       # 100 - 0 >= 100: kept
    assert monthly_cutoffs(1, 129, 30, 3, 100) == []          # 99 days: dropped
    assert monthly_cutoffs(10, 200, 1, 2, 0) == [170, 200]


def test_persistence_residuals_of_the_last_origins_only():
    v = np.array([1.0, 2.0, 4.0, 4.0, 8.0])
    r = persistence_residuals(v, 2, max_origins=1)
    assert r[0].tolist() == [0.0, 1.0] and r[1, 0] == 1.0 and math.isnan(r[1, 1])
    full = persistence_residuals(v, 2)
    assert full.shape == (4, 2) and full[:, 0].tolist() == [1.0, 1.0, 0.0, 1.0] and full[0, 1] == 3.0
    assert persistence_residuals(np.array([5.0]), 3).shape == (0, 3)


def test_conformal_quantile_uses_the_finite_sample_level_and_the_higher_value():
    q = conformal_quantiles(np.array([0.1, 0.2, 0.3, 0.4, 0.5]), (0.8, 0.5))
    assert q[0.8].tolist() == [0.5]    # ceil(6 x 0.8) / 5 = 1: the largest
    assert q[0.5].tolist() == [0.4]    # ceil(6 x 0.5) / 5 = 0.6: the 'higher' of 0.3 and 0.4
    assert set(conformal_quantiles(np.array([0.1]))) == set(LEVELS)


def test_conformal_quantiles_never_shrink_along_the_horizon_and_empty_days_are_zero_then_carried():
    r = np.array([[0.3, 0.1, NAN], [0.1, 0.1, NAN], [0.2, 0.1, NAN]])
    assert conformal_quantiles(r, (0.5,))[0.5].tolist() == [0.3, 0.3, 0.3]
    assert conformal_quantiles(np.full((2, 2), NAN), (0.8,))[0.8].tolist() == [0.0, 0.0]


def test_bands_are_relative_clipped_at_zero_and_cut_to_the_point_length():
    q = {0.8: np.array([0.5, 1.5, 9.0]), 0.95: np.array([1.0, 2.0, 9.0])}
    b = bands(np.array([2.0, 2.0]), q)
    assert {k: v.tolist() for k, v in b.items()} == {"lo80": [1.0, 0.0], "hi80": [3.0, 5.0],
                                                    "lo95": [0.0, 0.0], "hi95": [4.0, 6.0]}


def test_choose_model_edges():
    assert choose_model({"persistence": 1.0, "a": 0.98}) == "persistence"    # exactly 2 % better is not enough
    assert choose_model({"persistence": 1.0, "a": 0.97, "b": 0.5}) == "b"
    assert choose_model({"persistence": 1.0, "a": None}) == "persistence"
    assert choose_model({"a": 3.0, "b": 2.0}) == "b"                          # no baseline score: the best
    assert choose_model({"persistence": NAN, "a": 3.0}) == "a"
    assert choose_model({"naive": 1.0, "a": 0.9}, baseline="naive") == "a"
    assert choose_model({"persistence": 1.0, "a": 0.9}, margin=0.2) == "persistence"


def test_day_index_counts_days_from_1970():
    assert day_index(date(1970, 1, 11)) == 10
    assert from_day_index(10) == date(1970, 1, 11) and from_day_index(np.int64(-1)) == date(1969, 12, 31)


def test_asof_daily_without_observations_or_days_is_nan():
    assert np.isnan(asof_daily(np.array([]), np.array([]), 0, 2)).all() and asof_daily([], [], 0, 2).size == 3
    assert asof_daily(np.array([5]), np.array([2.0]), 5, 5).tolist() == [2.0]


def test_flatness_has_a_relative_tolerance_and_ignores_nan():
    assert is_flat(np.array([NAN, 2.0, 2.0 + 1e-10]))
    assert not is_flat(np.array([2.0, 2.001]))
    assert is_flat(np.array([2.0, 2.001]), rtol=0.001)
    assert is_flat(np.array([NAN, NAN]))


def test_step_changes_count_days_that_differ_from_the_day_before():
    assert step_changes(np.array([1.0, NAN, 1.0, 2.0, 2.0, 1.0])) == 2
    assert step_changes(np.array([3.0])) == 0


def test_level_shift_is_strictly_above_the_threshold_and_skips_gaps():
    assert last_level_shift(np.array([1.0, 1.2, 1.2])) is None      # exactly 20 %: not a new regime
    assert last_level_shift(np.array([1.0, 1.3, 1.3, 1.0])) == 3    # the last of two shifts (-23 %)
    assert last_level_shift(np.array([1.0, 1.3]), threshold=0.5) is None
    assert last_level_shift(np.array([1.0, NAN, 5.0, 5.0])) is None   # a missing day is no shift
    assert last_level_shift(np.array([0.0, 1.0, 1.0])) == 1           # from zero: an infinite move


def test_relative_key_rounds_to_its_decimals():
    assert relative_key(np.array([1.0000001, 2.0])) == relative_key(np.array([1.0, 2.0]))
    assert relative_key(np.array([1.01, 2.0]), decimals=1) == relative_key(np.array([1.0, 2.0]), decimals=1)
    assert relative_key(np.array([1.01, 2.0]), decimals=3) != relative_key(np.array([1.0, 2.0]), decimals=3)


def test_activity_class_edges():
    four = np.repeat([1.0, 2.0, 1.0, 2.0, 1.0], 10)
    assert activity_class(four) == "low" and activity_class(np.r_[four, 3.0]) == "high"
    assert activity_class(np.r_[1.0, np.full(20, 2.0)], days=20) == "flat"
    assert activity_class(np.r_[1.0, np.full(20, 2.0)], days=21) == "low"


def test_metrics_read_missing_values_given_as_none_as_nan():
    assert mape([100.0, None], [90.0, 5.0]) == 10.0 and mape([100.0, 5.0], [90.0, None]) == 10.0
    assert smape([100.0, None], [100.0, 5.0]) == 0.0 and smape([100.0, 5.0], [100.0, None]) == 0.0
    assert coverage([1.0, None], np.array([0.0, 0.0]), np.array([2.0, 2.0])) == 1.0
    assert width([2.0, None], np.array([1.0, 0.0]), np.array([3.0, 1.0])) == 100.0
    r = persistence_residuals([1.0, None, 2.0], 1)
    assert r[0, 0] != r[0, 0] and r[1, 0] != r[1, 0]   # no change is measured across a missing day


def test_metrics_with_nothing_to_compare_are_nan_without_numpy_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")   # numpy's "Mean of empty slice" would be a RuntimeWarning
        assert math.isnan(mape(np.array([0.0]), np.array([1.0])))
        assert math.isnan(smape(np.array([0.0]), np.array([0.0])))
        assert math.isnan(coverage(np.array([NAN]), np.array([0.0]), np.array([1.0])))
        assert math.isnan(width(np.array([0.0]), np.array([0.0]), np.array([1.0])))


def test_choose_model_never_picks_a_model_without_a_score_and_keeps_the_first_of_a_tie():
    assert choose_model({"persistence": NAN, "a": NAN}) == "persistence"
    assert choose_model({"persistence": 1.0, "a": 0.5, "b": 0.5}) == "a"
    assert choose_model({"a": 0.5, "b": 0.5}) == "a"


def test_persistence_residuals_with_more_origins_asked_than_there_are_and_of_two_days():
    v = np.array([1.0, 2.0, 4.0, 4.0, 8.0])
    assert np.array_equal(persistence_residuals(v, 2, max_origins=10), persistence_residuals(v, 2), equal_nan=True)
    assert persistence_residuals(v, 2, max_origins=3).shape == (4, 2)    # 5 - 3 - 2 = 0: every origin
    assert persistence_residuals(v, 1, max_origins=2).shape == (2, 1)    # 5 - 2 - 1 = 2: origins 2 and 3
    assert persistence_residuals(np.array([2.0, 3.0]), 1).tolist() == [[0.5]]


def test_activity_class_looks_back_exactly_365_days():
    assert activity_class(np.r_[1.0, np.full(365, 2.0)]) == "flat"   # the change is 366 days back
    assert activity_class(np.r_[1.0, np.full(364, 2.0)]) == "low"


def test_coverage_tolerates_a_picometre_below_lo_and_above_hi_but_no_more():
    lo, hi = np.array([1.0]), np.array([2.0])
    assert coverage(np.array([1.0 - 1e-12]), lo, hi) == 1.0
    assert coverage(np.array([2.0 + 1e-12]), lo, hi) == 1.0
    assert coverage(np.array([2.5]), lo, hi) == 0.0 and coverage(np.array([0.5]), lo, hi) == 0.0


def test_quantiles_and_bands_read_none_as_missing():
    q = conformal_quantiles([[0.1, None], [0.3, 0.2]], (0.5,))
    assert q[0.5].tolist() == [0.3, 0.3]
    b = bands([2.0, None], {0.8: np.array([0.5, 0.5]), 0.95: np.array([1.0, 1.0])})
    assert b["hi80"][0] == 3.0 and math.isnan(b["hi80"][1])
