"""Daily price series rules (domain.price_series): the last observation of a day wins however many there are,
flatness relative to the latest price, level-shift threshold, the scale-free key and missing values."""
from __future__ import annotations

import warnings

import numpy as np

from domain.price_series import activity_class, asof_daily, is_flat, last_level_shift, relative_key, step_changes

NAN = float("nan")


def test_the_last_of_many_observations_of_a_day_wins():
    rng = np.random.default_rng(0)
    days = rng.integers(0, 5, 300)        # enough duplicates that an unstable sort reorders them
    prices = np.arange(300.0)
    expected = [prices[days == d][-1] for d in range(5)]
    assert asof_daily(days, prices, 0, 4).tolist() == expected


def test_flatness_is_measured_against_the_latest_price_inclusively():
    v = np.array([1.0, 1.5, 2.0])
    assert is_flat(v, rtol=0.5)           # |1 - 2| <= 0.5 x 2
    assert not is_flat(v, rtol=0.3)       # within 0.3 x 1.5 of the middle price, not of the latest


def test_level_shift_threshold_is_exclusive_and_20_percent_by_default():
    assert last_level_shift(np.array([1.0, 1.25]), threshold=0.25) is None
    assert last_level_shift(np.array([1.0, 1.5]), threshold=0.25) == 1
    assert last_level_shift(np.array([1.0, 1.21])) == 1 and last_level_shift(np.array([1.0, 1.19])) is None


def test_level_shift_over_zeros_and_gaps_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")    # 0/0 and x/0 must not raise numpy RuntimeWarnings
        assert last_level_shift(np.array([0.0, 0.0, 1.0, 1.0])) == 2


def test_relative_key_divides_by_the_latest_price_and_rounds_to_six_decimals():
    assert relative_key(np.array([1.0, 2.0, 4.0])) == np.array([0.25, 0.5, 1.0]).tobytes()
    assert relative_key(np.array([1.00000006, 1.0])) == np.array([1.0, 1.0]).tobytes()


def test_series_given_as_lists_with_missing_days():
    assert activity_class([1.0, None, 2.0, 2.0]) == "low"
    assert last_level_shift([1.0, None, 2.0]) is None
    assert relative_key([None, 2.0]) == np.array([NAN, 1.0]).tobytes()


def test_step_changes_of_two_days():
    assert step_changes(np.array([1.0, 2.0])) == 1
    assert step_changes(np.array([])) == 0
