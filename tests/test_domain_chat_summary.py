"""The chat answer built from facts only (domain.chat_plan.template_summary) and the place words
(domain.geo.place_filter) chat and search share."""
from __future__ import annotations

import pytest

from domain.chat import ChatConstraints, Recommendation
from domain.chat_plan import template_summary
from domain.geo import place_filter


def _rec(price: float, total: float, stale: bool = False, count: float = 8) -> Recommendation:
    return Recommendation(offer_id="o", provider="lambda", gpu_type="H100-SXM", gpu_count=count, region="us-east-1",
                          pricing="on_demand", price_per_hour=price, total_for_duration=total, last_updated="x",
                          stale=stale, reason="r")


def test_summary_of_the_best_match_with_its_total_and_the_rest():
    c = ChatConstraints(duration_hours=10)
    recs = [_rec(23.92, 239.2), _rec(24.5, 245.0), _rec(27.123456, 271.2)]
    assert template_summary(c, recs, [], None, None) == (
        "Best match: 8 x H100-SXM from lambda in us-east-1 at 23.92 USD/h (on_demand), 239.20 USD for 10 h. "
        "2 more options follow, up to 27.12 USD/h.")


def test_summary_of_one_stale_offer_for_one_hour_with_a_forecast():
    text = template_summary(ChatConstraints(), [_rec(2.5, 2.5, stale=True, count=1)], [], 2.345678, "ignored")
    assert text == ("Best match: 1 x H100-SXM from lambda in us-east-1 at 2.5 USD/h (on_demand), 2.50 USD for 1 h. "
                    "Its price data is stale; check it before booking. The price forecast for this GPU is 2.346 USD/h.")


def test_summary_says_one_more_option_in_the_singular():
    text = template_summary(ChatConstraints(), [_rec(1.0, 1.0), _rec(2.0, 2.0)], [], None, None)
    assert text.endswith(" 1 more option follow, up to 2 USD/h.")


def test_summary_without_offers_suggests_at_most_two_relaxations():
    relax = [("max_price", "raise the price limit", 3.5), ("region", "drop the region", 2.25),
             ("pricing", "allow spot", 1.0)]
    assert template_summary(ChatConstraints(), [], relax, None, None) == (
        "No offer meets all your limits. To raise the price limit (max_price) gives offers from 3.5 USD/h. "
        "To drop the region (region) gives offers from 2.25 USD/h.")


def test_summary_without_anything_or_with_a_follow_up_question():
    assert template_summary(ChatConstraints(), [], [], None, None) == "No offer matches, even with one limit relaxed."
    assert template_summary(ChatConstraints(), [], [], 1.0, "Which GPU?") == "Which GPU?"
    assert template_summary(ChatConstraints(), [], [], 1.5, None) == (
        "No offer matches, even with one limit relaxed. The price forecast for this GPU is 1.5 USD/h.")


@pytest.mark.parametrize("place, expected", [
    ("eu", ("continent", "EU")), (" NA ", ("continent", "NA")), ("de", ("country", "DE")), ("US", ("country", "US")),
    ("us-east-1", ("region", "us-east-1")), (" europe-west4 ", ("region", "europe-west4")), ("zz", ("region", "zz")),
    ("deu", ("region", "deu")),
])
def test_place_words_mean_a_continent_a_country_or_a_region(place, expected):
    assert place_filter(place) == expected
