"""Pure search logic: query normalization, GPU alias resolution, text terms, the index's caps and deltas."""
from __future__ import annotations

import json
import uuid

import pytest

from domain import gpu_alias
from domain.offer_index import OfferIndex
from domain.search import EXPORT_MAX_ROWS, ExportQuery, QueryError, Sort, parse_query, text_terms


def _row(i: int, price: float, gpu: str = "H100", count: float = 1.0) -> tuple:
    return (str(uuid.UUID(int=i + 1)), "p", f"e{i}", f"{gpu} box {i}", gpu, count, 80.0, 8.0, 32.0, None, price,
            round(price / count, 6), "USD", "on_demand", "r1", "US", "NA", "up", ["t"], [gpu.lower(), "box"], i, i)


def test_cache_key_ignores_spelling():
    a = parse_query(b"gpu_type=H100,L4&max_price=2.50&pricing=spot&sort=price_asc")
    b = parse_query("pricing=spot&gpu_type=L4&gpu_type=H100&max_price=2.5")
    assert a.cache_key() == b.cache_key()
    assert a.cache_key() != parse_query(b"gpu_type=H100,L4&max_price=2.5&pricing=spot&page=2").cache_key()


def test_query_errors_name_every_bad_field():
    with pytest.raises(QueryError) as exc:
        parse_query(b"max_price=-1&page_size=1000&sort=cheap")
    assert {d["field"] for d in exc.value.details} == {"max_price", "page_size", "sort"}
    with pytest.raises(QueryError):
        parse_query(b"format=csv")  # export-only parameter
    assert parse_query(b"format=json&gpu_type=l4", ExportQuery).format == "json"


def test_gpu_alias_fallback_ignores_case_and_punctuation():
    matched, unknown = gpu_alias.resolve(["a100_80gb", "RTX 4090", "h100", "zzz"], ["A100-80GB", "RTX-4090", "H100", "L4"])
    assert matched == {"a100_80gb": ["A100-80GB"], "RTX 4090": ["RTX-4090"], "h100": ["H100"]}
    assert unknown == ["zzz"]


def test_text_terms_are_word_runs():
    assert text_terms("A100-80GB  us-east-1, NVLink!") == ["a100", "80gb", "us", "east", "1", "nvlink"]
    assert text_terms("!!") == []


def test_export_is_capped_and_sorted_with_id_tiebreak():
    rows = [_row(i, float(1 + i % 3)) for i in range(EXPORT_MAX_ROWS + 50)]
    index = OfferIndex(reversed(rows))
    result = index.query(ExportQuery(), Sort.price_asc, 0, EXPORT_MAX_ROWS)
    assert result.total == EXPORT_MAX_ROWS + 50 and len(result.rows) == EXPORT_MAX_ROWS
    got = [(index.rows[i][10], index.rows[i][0]) for i in result.rows]
    assert got == sorted((r[10], r[0]) for r in rows)[:EXPORT_MAX_ROWS]


def test_price_delta_resorts_in_place():
    index = OfferIndex([_row(i, 10.0 + i, count=2.0) for i in range(5)])
    assert index.apply_price(str(uuid.UUID(int=3)), 1.0, "degraded", 99)
    assert not index.apply_price(str(uuid.UUID(int=999)), 1.0, "up", 99)
    index.resort()
    first = index.item(int(index.query(ExportQuery(), Sort.price_asc, 0, 1).rows[0]))
    assert (first["id"], first["price_per_hour"], first["price_per_gpu_hour"], first["availability"]) == \
        (str(uuid.UUID(int=3)), 1.0, 0.5, "degraded")
    assert index.query(parse_query(b"availability=degraded"), Sort.price_asc, 0, 10).total == 1
    page = json.loads(index.page_json(index.query(ExportQuery(), Sort.price_asc, 0, 1)))
    assert page["items"][0]["price_per_gpu_hour"] == 0.5 and page["items"][0]["last_updated"].endswith(".000099Z")


def test_cursor_paging_is_page_paging_by_another_name():
    from domain.search import SearchQuery

    first = parse_query(b"gpu_type=H100&limit=10")
    assert first.offset == 0 and first.size == 10
    nxt = first.next_cursor(total=25)
    second = parse_query(f"gpu_type=H100&limit=10&cursor={nxt}".encode())
    assert second.offset == 10 and second.cache_key() == parse_query(b"gpu_type=H100&page=2&page_size=10").cache_key()
    last = parse_query(f"limit=10&cursor={second.next_cursor(total=25)}".encode())
    assert last.offset == 20 and last.next_cursor(total=25) is None
    assert SearchQuery().next_cursor(total=20) is None


@pytest.mark.parametrize("raw,field", [(b"cursor=abc&page=2", "query"), (b"limit=5&page_size=5", "query"),
                                       (b"limit=0", "limit"), (b"limit=101", "limit"), (b"cursor=%%", "cursor")])
def test_cursor_paging_bad_input(raw, field):
    with pytest.raises(QueryError) as exc:
        parse_query(raw)
    assert field in {d["field"] for d in exc.value.details}


def test_foreign_cursor_is_rejected():
    from domain.pagination import encode_cursor

    for cursor in (encode_cursor({"t": "x", "id": 1}), encode_cursor({"o": -5}), "bm90IGpzb24"):
        with pytest.raises(QueryError) as exc:
            parse_query(f"cursor={cursor}".encode()).cache_key()
        assert exc.value.details[0]["field"] == "cursor"
