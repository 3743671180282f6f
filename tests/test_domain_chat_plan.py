"""Chat planning rules (domain.chat_plan): ranking by total cost, contradictions and the question back, the
answer built from facts only; and the place words (domain.geo.place_filter) chat and search share."""
from __future__ import annotations

import pytest

from domain.chat import ChatConstraints, Recommendation
from domain.chat_plan import (contradictions, follow_up, gpu_names, hourly_limit, rank, relaxations, search_queries,
                              template_summary)
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


def _offer(oid: str, price: float, provider: str = "aws") -> dict:
    return {"id": oid, "provider": provider, "gpu_type": "A100-80GB-SXM", "gpu_count": 2.0, "region": "eu-west-1",
            "pricing": "spot", "price_per_hour": price, "last_updated": "2026-11-30T10:00:00Z"}


def test_rank_reasons_number_offers_from_one_and_flag_stale_data():
    recs = rank([_offer("b", 2.5), _offer("a", 1.25, "vastai")], ChatConstraints(duration_hours=3), {"vastai"}, 5)
    assert [r.reason for r in recs] == [
        "#1 by total cost: 2 x A100-80GB-SXM at 1.25 USD/h (spot) in eu-west-1, 3.75 USD for 3 h; "
        "price data is stale, check before booking",
        "#2 by total cost: 2 x A100-80GB-SXM at 2.5 USD/h (spot) in eu-west-1, 7.50 USD for 3 h"]


def test_rank_prices_one_hour_when_no_duration_is_given_and_keeps_four_decimals():
    (rec,) = rank([_offer("a", 0.123456)], ChatConstraints(), set(), 5)
    assert rec.total_for_duration == 0.1235 and rec.reason.endswith("0.12 USD for 1 h")
    (rec,) = rank([_offer("a", 2.71828)], ChatConstraints(duration_hours=2), set(), 5)
    assert rec.total_for_duration == 5.4366


def test_rank_lists_an_offer_seen_twice_once():
    recs = rank([_offer("a", 1.0), _offer("a", 1.0), _offer("b", 2.0)], ChatConstraints(), set(), 5)
    assert [r.offer_id for r in recs] == ["a", "b"]


def test_memory_contradiction_only_above_the_models_largest_memory():
    assert contradictions(ChatConstraints(gpu_type="T4", min_gpu_memory_gb=16)) == []
    assert contradictions(ChatConstraints(gpu_type="T4", min_gpu_memory_gb=16.5)) == [
        "T4 has at most 16 GB per GPU, but 16.5 GB was asked"]
    assert contradictions(ChatConstraints(gpu_type="A100", min_gpu_memory_gb=80)) == []


def test_follow_up_joins_every_conflict_and_asks_which_to_keep():
    c = ChatConstraints(gpu_type="T4", min_gpu_memory_gb=40)
    assert follow_up(c, ["two budgets"]) == ("Your request conflicts: two budgets; T4 has at most 16 GB per GPU, "
                                             "but 40 GB was asked. Which should I keep?")


def test_follow_up_asks_for_the_gpu_only_when_nothing_names_one():
    assert follow_up(ChatConstraints(duration_hours=5), []) == (
        "Which GPU do you need, or what will you run on it (for example: fine-tune a 13B model, serve "
        "Llama 3 8B), and for how long?")
    assert follow_up(ChatConstraints(gpu_type="H100"), []) is None
    assert follow_up(ChatConstraints(min_gpu_memory_gb=40), []) is None


def test_nvlink_is_a_contradiction_only_for_models_without_an_nvlink_board():
    assert contradictions(ChatConstraints(gpu_type="H100", interconnect="nvlink")) == []
    assert contradictions(ChatConstraints(gpu_type="L4", interconnect="nvlink")) == ["L4 has no NVLink (SXM/NVL) variant"]
    assert contradictions(ChatConstraints(gpu_type="L4", interconnect="infiniband")) == []


def test_search_queries_carry_every_constraint_one_query_per_kind_of_place():
    c = ChatConstraints(gpu_type="L4", interconnect="nvlink", gpu_count=2, min_gpu_memory_gb=20, providers=["aws", "gcp"],
                        pricing="spot", max_price_per_hour=3, regions=["us-east-1", "eu-west-1"], countries=["DE", "FR"],
                        continents=["EU", "NA"])
    base = ("sort=price_asc&page_size=100&availability=up%2Cdegraded&gpu_type=L4&min_gpu_count=2&min_gpu_memory_gb=20.0"
            "&provider=aws%2Cgcp&pricing=spot%2Cinterruptible&max_price=3.0")
    assert search_queries(c) == [(base + "&region=us-east-1%2Ceu-west-1", None), (base + "&country=DE%2CFR", None),
                                 (base + "&continent=EU%2CNA", None)]


def test_search_query_for_on_demand_over_infiniband_without_a_gpu():
    assert search_queries(ChatConstraints(pricing="on_demand", interconnect="infiniband")) == [
        ("sort=price_asc&page_size=100&availability=up%2Cdegraded&pricing=on_demand&q=infiniband", None)]
    assert search_queries(ChatConstraints(interconnect="nvlink"), page_size=5)[0][0].startswith(
        "sort=price_asc&page_size=5&availability=up%2Cdegraded&gpu_type=")


def test_gpu_names_without_a_gpu_type():
    assert gpu_names(ChatConstraints()) == []
    assert "H100-SXM" in gpu_names(ChatConstraints(interconnect="nvlink"))


def test_hourly_limit_keeps_six_decimals():
    assert hourly_limit(ChatConstraints(max_total=10, duration_hours=3)) == 3.333333


def test_spot_pricing_is_not_relaxed_but_later_limits_still_are():
    got = [name for name, _, _ in relaxations(ChatConstraints(pricing="spot", providers=["aws"], gpu_count=8))]
    assert got == ["providers", "gpu_count"]
    got = [name for name, _, _ in relaxations(ChatConstraints(pricing="on_demand", providers=["aws"]))]
    assert got == ["pricing", "providers"]
