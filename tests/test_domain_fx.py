"""Currency conversion of stated budgets (domain.fx): rates, overrides, case and the rounding rule."""
from __future__ import annotations

import pytest

from domain.fx import USD_PER_UNIT, UnknownCurrency, to_usd


def test_amounts_of_a_dollar_or_more_round_to_the_cent():
    assert to_usd(100, "EUR") == 117.0
    assert to_usd(1.23456, "USD") == 1.23
    assert to_usd(3, "GBP") == 4.11


def test_amounts_under_a_dollar_keep_four_decimals():
    assert to_usd(0.123456, "USD") == 0.1235
    assert to_usd(10, "JPY") == 0.069
    assert to_usd(1, "KRW") == 0.0007


def test_currency_codes_ignore_case():
    assert to_usd(100, "eur") == to_usd(100, "EUR") == 117.0


def test_deployment_rates_override_and_extend_the_table():
    assert to_usd(10, "EUR", {"EUR": 2.0}) == 20.0
    assert to_usd(10, "XAU", {"XAU": 3000.0}) == 30000.0
    assert to_usd(10, "GBP", {"EUR": 2.0}) == 13.7   # the other rates stay
    assert USD_PER_UNIT["EUR"] == 1.17                # an override never changes the shared table


def test_unknown_currency_names_itself():
    with pytest.raises(UnknownCurrency, match=r"^no exchange rate for 'xyz'$"):
        to_usd(1, "xyz")
