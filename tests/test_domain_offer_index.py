"""The offer index's rendering and in-place updates (domain.offer_index): per-GPU price rounding, CSV lines,
pre-rendered items, and items that follow an update."""
from __future__ import annotations

import json

import numpy as np
import pytest

from domain.offer_index import COLUMNS, OfferIndex
from domain.search import Sort, parse_query

C = {name: i for i, name in enumerate(COLUMNS)}
T_US = 1_767_225_600_000_000   # 2026-01-01T00:00:00Z


def _row(oid: str, price: float, count: float = 1.0, memory: float | None = 80.0, tags=("ssd",)) -> list:
    return [oid, "aws", "e-" + oid, "box " + oid, "H100-SXM", count, memory, 8.0, 64.0, None, price,
            round(price / count, 6), "USD", "on_demand", "us-east-1", "US", "NA", "up", list(tags), ["h100"],
            T_US, T_US]


def _ids(index: OfferIndex, query: str) -> list[str]:
    return [index.rows[int(i)][0] for i in index.query(parse_query(query), Sort.price_asc, 0, 100).rows]


def test_price_delta_sets_the_per_gpu_price_rounded_to_six_decimals():
    index = OfferIndex([_row("a", 3.0, count=3.0)])
    assert index.apply_price("a", 1.0, "degraded", T_US + 1) is True
    item = index.item(0)
    assert (item["price_per_hour"], item["price_per_gpu_hour"], item["availability"]) == (1.0, 0.333333, "degraded")
    assert index.apply_price("missing", 1.0, "up", T_US) is False


def test_csv_lines_end_with_a_newline_and_empty_values_are_empty():
    index = OfferIndex([_row("a", 2.0, memory=None, tags=("ssd", "ib"))])
    text = index.csv_rows([0], header=True)
    header, line, rest = text.split("\n")
    assert rest == "" and "\r" not in text
    record = dict(zip(header.split(","), line.split(",")))
    assert record["gpu_memory_gb"] == "" and record["tags"] == "ssd;ib" and record["price_per_hour"] == "2.0"


def test_prerender_renders_exactly_the_asked_items_and_they_match_the_items():
    index = OfferIndex([_row(c, 1.0 + n) for n, c in enumerate("abcd")])
    index.prerender(1, 10)
    assert [b is not None for b in index._json] == [False, True, True, True]
    assert [json.loads(index.item_json(i)) for i in range(4)] == [index.item(i) for i in range(4)]
    fresh = OfferIndex([_row(c, 1.0 + n) for n, c in enumerate("abcd")])
    fresh.prerender(1, 3)
    assert [b is not None for b in fresh._json] == [False, True, True, False]


def test_rendered_items_follow_an_in_place_update():
    index = OfferIndex([_row("a", 2.0), _row("b", 3.0)])
    before = json.loads(index.item_json(0))
    changed = _row("a", 5.0, memory=96.0)
    changed[C["updated_us"]] = T_US + 60_000_000
    assert index.update_rows([changed]) is None
    index.resort()
    after = json.loads(index.item_json(0))
    assert (before["price_per_hour"], after["price_per_hour"]) == (2.0, 5.0)
    assert after["gpu_memory_gb"] == 96.0 and after["last_updated"] == "2026-01-01T00:01:00.000000Z"
    assert _ids(index, "min_gpu_memory_gb=90") == ["a"]
    assert _ids(index, "") == ["b", "a"]


def _ranked_index(total: int, seed: int) -> tuple[OfferIndex, list[str]]:
    """`total` spot offers whose price order is a seeded permutation, among twice as many dearer on-demand ones
    (so a spot query takes the partial-selection page strategy); returns the index and the spot ids by price."""
    perm = np.random.default_rng(seed).permutation(total)
    rows = []
    for i in range(2 * total + 10):
        row = _row(f"{i:05d}", 1.0 + float(perm[i]) if i < total else 10_000.0 + i)
        row[C["pricing"]] = "spot" if i < total else "on_demand"
        rows.append(row)
    by_price = sorted(range(total), key=lambda i: perm[i])
    return OfferIndex(rows), [f"{i:05d}" for i in by_price]


@pytest.mark.parametrize("total, seed, k", [(1000, 22, 300), (700, 9, 340)])
def test_a_first_page_of_few_matches_is_exactly_the_cheapest_in_order(total, seed, k):
    # the selection of the first k matches (argpartition at k - 1) must be exact: these permutations are ones
    # where selecting at k + 1 or k - 2 returns other offers
    index, by_price = _ranked_index(total, seed)
    result = index.query(parse_query("pricing=spot"), Sort.price_asc, 0, k)
    assert result.total == total
    assert [index.rows[int(i)][0] for i in result.rows] == by_price[:k]


def test_an_empty_catalog_answers_any_filter_with_nothing():
    index = OfferIndex([])
    result = index.query(parse_query("provider=aws&region=us-east-1"), Sort.price_asc, 0, 10)
    assert result.total == 0 and list(result.rows) == []
    assert result.warnings == ["no offer matches provider=aws", "no offer matches region=us-east-1"]


def test_a_filter_that_matches_nothing_alone_is_named_with_all_its_values():
    index = OfferIndex([_row("a", 1.0, tags=("ssd", "ib"))])
    for query, label in (("gpu_type=A100,L4", "gpu_type=A100,L4"), ("provider=gcp,azure", "provider=gcp,azure"),
                         ("country=DE,FR", "country=DE,FR"), ("tags=ssd,nvlink", "tags=ssd,nvlink"),
                         ("pricing=spot,interruptible", "pricing=spot,interruptible")):
        assert index.query(parse_query(query), Sort.price_asc, 0, 10).warnings == [f"no offer matches {label}"]
