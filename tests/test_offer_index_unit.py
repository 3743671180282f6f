"""The in-memory offer index against a plain-Python reference: every filter, sort, page and warning, on random
offers and random queries (fixed seed), plus in-place updates and rendering."""
from __future__ import annotations

import csv
import io
import json
import random
import uuid

import pytest

from domain import gpu_alias
from domain.offer_index import COLUMNS, OfferIndex, iso_us
from domain.search import ITEM_FIELDS, QueryError, Sort, document_terms, parse_query, text_terms

C = {name: i for i, name in enumerate(COLUMNS)}
GPUS = ["H100-SXM", "H100-PCIe", "A100-80GB-SXM", "A10", "A10G", "L4", "L40S", "RTX-4090"]
REGIONS = [("us-east-1", "US", "NA"), ("US-West-2", "US", "NA"), ("europe-west4", "NL", "EU"),
           ("ap-northeast-1", "JP", "AS"), ("moon-1", None, None)]
PROVIDERS = ["aws", "RunPod", "vast", "lambda"]
TAGS = ["nvlink", "IB", "ssd", "spot-ok"]


def _rows(n: int, rng: random.Random) -> list[tuple]:
    rows = []
    stamps = [1_700_000_000_000_000 + rng.randrange(10**9) for _ in range(n // 3)]  # shared: ties on updated
    for i in range(n):
        count = rng.choice([1, 2, 4, 8])
        price = rng.choice([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 8.0]) * rng.choice([1, count])
        region, country, continent = rng.choice(REGIONS)
        gpu = rng.choice(GPUS)
        updated = rng.choice(stamps)
        rows.append((str(uuid.UUID(int=rng.getrandbits(64))), rng.choice(PROVIDERS), f"e{i}", f"{gpu} box {i}", gpu,
                     float(count), rng.choice([None, 24.0, 48.0, 80.0]), rng.choice([None, 8.0, 16.0, 32.0]),
                     rng.choice([None, 64.0, 128.0, 256.0]), None, price, round(price / count, 6), "USD",
                     rng.choice(["on_demand", "spot", "interruptible"]), region, country, continent,
                     rng.choice(["up", "degraded", "down"]), rng.sample(TAGS, rng.randrange(3)),
                     [gpu.lower(), "box", f"zone{i % 5}"], updated, updated + rng.randrange(10**9)))
    return rows


# (query parameter, random value, test on a row); list values are comma-joined in the query
def _ci(col):
    return lambda vals, r: r[C[col]] is not None and r[C[col]].lower() in {v.lower() for v in vals}


def _at_least(col):
    return lambda v, r: r[C[col]] is not None and r[C[col]] >= float(v)


def _at_most(col):
    return lambda v, r: r[C[col]] is not None and r[C[col]] <= float(v)


FILTERS = {
    "gpu_type": (lambda g: g.sample(["H100", "a100", "A10", "l4", "L40S", "RTX 4090", "A10G"], g.choice([1, 2])),
                 None),  # the reference resolves names through gpu_alias like the index
    "provider": (lambda g: [p.upper() if g.random() < 0.3 else p for p in g.sample(PROVIDERS, g.choice([1, 2]))],
                 _ci("provider")),
    "region": (lambda g: [g.choice(REGIONS)[0].lower()], _ci("region")),
    "country": (lambda g: g.sample(["us", "NL", "JP", "DE"], g.choice([1, 2])), _ci("country")),
    "continent": (lambda g: g.sample(["NA", "EU", "AS", "OC"], g.choice([1, 2])), _ci("continent")),
    "pricing": (lambda g: g.sample(["on_demand", "spot", "interruptible"], g.choice([1, 2])), _ci("pricing")),
    "availability": (lambda g: g.sample(["up", "degraded", "down"], g.choice([1, 2])), _ci("availability")),
    "gpu_count": (lambda g: g.choice(["1", "2", "8", "3"]), lambda v, r: r[C["gpu_count"]] == float(v)),
    "min_gpu_count": (lambda g: g.choice(["2", "4", "8"]), _at_least("gpu_count")),
    "min_gpu_memory_gb": (lambda g: g.choice(["24", "48", "80", "30"]), _at_least("gpu_memory_gb")),
    "max_price": (lambda g: g.choice(["1", "2", "2.5", "6", "0.4"]), _at_most("price_per_hour")),
    "max_price_per_gpu": (lambda g: g.choice(["0.5", "1", "2.5"]), _at_most("price_per_gpu_hour")),
    "min_vcpu": (lambda g: g.choice(["8", "16", "32"]), _at_least("vcpu")),
    "min_memory_gb": (lambda g: g.choice(["64", "128", "200"]), _at_least("memory_gb")),
    "tags": (lambda g: g.sample(["nvlink", "ib", "SSD", "spot-ok"], g.choice([1, 2])),
             lambda vals, r: {v.lower() for v in vals} <= {t.lower() for t in r[C["tags"]]}),
    "q": (lambda g: g.choice(["h100", "box zone1", "a10g box", "zone3 l4", "nothing"]),
          lambda v, r: set(text_terms(v)) <= document_terms(r[C["lexemes"]])),
}
SORT_KEYS = {
    Sort.price_asc: lambda r: (r[C["price_per_hour"]], r[0]),
    Sort.price_desc: lambda r: (-r[C["price_per_hour"]], r[0]),
    Sort.price_per_gpu_asc: lambda r: (r[C["price_per_gpu_hour"]], r[0]),
    Sort.updated_desc: lambda r: (-r[C["updated_us"]], r[0]),
}


def _gpu_names(value: list[str], known: tuple[str, ...]) -> frozenset[str]:
    matched, _ = gpu_alias.resolve(value, known)
    return frozenset(n for ns in matched.values() for n in ns)


def _matches(name: str, value, row, known: tuple[str, ...]) -> bool:
    if name == "gpu_type":
        key = (tuple(value), known)
        if key not in _GPU_MEMO:
            _GPU_MEMO[key] = _gpu_names(value, known)
        return row[C["gpu_type"]] in _GPU_MEMO[key]
    return FILTERS[name][1](value, row)


_GPU_MEMO: dict = {}


def _label(name: str, value) -> str:
    if isinstance(value, list):
        if name in ("country", "continent"):
            value = [v.upper() for v in value]
        return f"{name}={','.join(value)}"
    if name == "q":
        return f"q={value}"
    return f"{name}={float(value):g}"


def _random_query(g: random.Random) -> tuple[dict, str, int, int]:
    chosen = {name: FILTERS[name][0](g) for name in g.sample(sorted(FILTERS), g.choice([0, 1, 1, 2, 2, 3]))}
    sort = g.choice(list(Sort))
    page_size = g.choice([1, 3, 20, 100])
    page = g.choice([1, 1, 2, 5])
    return chosen, sort.value, page, page_size


def _query_string(chosen: dict, sort: str, page: int, page_size: int) -> str:
    parts = [f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in chosen.items()]
    return "&".join(parts + [f"sort={sort}", f"page={page}", f"page_size={page_size}"])


def test_random_queries_agree_with_a_plain_python_reference():
    g = random.Random(11)
    rows = _rows(150, g)
    index = OfferIndex(rows)
    known = tuple(sorted({r[C["gpu_type"]] for r in rows}))
    for _ in range(250):
        chosen, sort, page, page_size = _random_query(g)
        q = parse_query(_query_string(chosen, sort, page, page_size))
        result = index.query(q, q.sort, (page - 1) * page_size, page_size)
        want = sorted((r for r in rows if all(_matches(k, v, r, known) for k, v in chosen.items())),
                      key=SORT_KEYS[q.sort])
        got = [index.rows[int(i)][0] for i in result.rows]
        assert (result.total, got) == (len(want), [r[0] for r in want][(page - 1) * page_size:page * page_size]), \
            (chosen, sort, page, page_size)
        if want:
            assert result.warnings == []
            continue
        alone = [_label(k, chosen[k]) for k in FILTERS  # in the index's order of filters
                 if k in chosen and not any(_matches(k, chosen[k], r, known) for r in rows)]
        assert result.warnings == ([f"no offer matches {a}" for a in alone] if alone else
                                   ["no offer matches all filters together; each matches some offers alone"])


def test_every_page_strategy_matches_the_full_order():
    """Few, middling and most rows matching, small and large pages: each path gives the order's slice."""
    g = random.Random(5)
    rows = _rows(200, g)
    index = OfferIndex(rows)
    known = tuple(sorted({r[C["gpu_type"]] for r in rows}))
    for flt in ("", "provider=aws", "provider=aws,vast,lambda", "availability=up&pricing=spot",
                "gpu_type=L4", "max_price=1"):
        hits = [r for r in rows if not flt or _matches_query(flt, r, known)]
        for sort in Sort:
            want = [r[0] for r in sorted(hits, key=SORT_KEYS[sort])]
            for offset, limit in ((0, 1), (0, 7), (3, 5), (10, 40), (0, 90), (95, 30), (0, 200)):
                result = index.query(parse_query(flt), sort, offset, limit)
                assert result.total == len(want)
                assert [index.rows[int(i)][0] for i in result.rows] == want[offset:offset + limit], (flt, sort)


def _matches_query(flt: str, row, known: tuple[str, ...]) -> bool:
    return all(_matches(k, v.split(",") if k in ("provider", "availability", "pricing", "gpu_type") else v, row, known)
               for k, v in (p.split("=") for p in flt.split("&")))


def test_unknown_gpu_type_is_a_query_error_and_known_but_absent_matches_nothing():
    index = OfferIndex(_rows(30, random.Random(1)))
    with pytest.raises(QueryError) as exc:
        index.query(parse_query("gpu_type=H100,warp-drive-9"), Sort.price_asc, 0, 10)
    assert exc.value.details == [{"field": "gpu_type", "message": "unknown GPU type 'warp-drive-9'"}]
    result = index.query(parse_query("gpu_type=B200"), Sort.price_asc, 0, 10)
    assert result.total == 0 and result.warnings == ["no offer matches gpu_type=B200"]
    assert index.query(parse_query("gpu_type=B200"), Sort.price_asc, 0, 10).total == 0  # from the cache


def test_stale_providers_are_named_only_when_in_the_result():
    rows = _rows(60, random.Random(2))
    index = OfferIndex(rows)
    index.stale = {"aws": "last sync 2 h ago", "nobody": "never synced"}
    assert index.query(parse_query(""), Sort.price_asc, 0, 5).warnings == ["provider 'aws' data is stale: last sync 2 h ago"]
    assert index.query(parse_query("provider=vast"), Sort.price_asc, 0, 5).warnings == []
    assert index.query(parse_query("provider=aws,vast"), Sort.price_asc, 0, 5).warnings == \
        ["provider 'aws' data is stale: last sync 2 h ago"]


def _item(r) -> dict:
    d = dict(zip(COLUMNS, r))
    out = {k: d[k] for k in ITEM_FIELDS if k in d}
    out["tags"] = list(d["tags"])
    out["last_updated"] = iso_us(d["updated_us"])
    return out


def test_items_page_json_and_csv_render_the_rows():
    rows = _rows(12, random.Random(3))
    index = OfferIndex(rows)
    by_id = {r[0]: r for r in rows}
    result = index.query(parse_query(""), Sort.price_desc, 2, 4)
    page = json.loads(index.page_json(result))
    assert page == {"total": 12, "items": [_item(by_id[index.rows[int(i)][0]]) for i in result.rows],
                    "next_cursor": None}
    assert json.loads(index.page_json(result, "abc"))["next_cursor"] == "abc"
    assert list(page["items"][0]) == list(ITEM_FIELDS)
    index.prerender(0, 100)
    assert json.loads(index.item_json(int(result.rows[0]))) == page["items"][0]
    index.stale = {p: "down" for p in PROVIDERS}
    warned = json.loads(index.page_json(index.query(parse_query(""), Sort.price_asc, 0, 1)))
    assert warned["warnings"] and warned["total"] == 12
    text = index.csv_rows(result.rows, header=True)
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == list(ITEM_FIELDS) and len(lines) == 5
    first = _item(by_id[index.rows[int(result.rows[0])][0]])
    assert lines[1] == ["" if first[k] is None else (";".join(first[k]) if k == "tags" else str(first[k]))
                        for k in ITEM_FIELDS]
    assert index.csv_rows([], header=False) == ""
    assert iso_us(1_700_000_000_123_456) == "2023-11-14T22:13:20.123456Z"


def test_update_rows_in_place_when_only_numbers_change_else_a_merged_rebuild():
    rows = _rows(20, random.Random(4))
    index = OfferIndex(rows)
    cheapest = index.rows[int(index.order[Sort.price_asc][0])][0]
    target = max(rows, key=lambda r: r[C["price_per_hour"]])
    changed = list(target)
    changed[C["price_per_hour"]], changed[C["price_per_gpu_hour"]] = 0.01, 0.005
    changed[C["gpu_memory_gb"]], changed[C["vcpu"]], changed[C["memory_gb"]] = None, 64.0, 512.0
    changed[C["availability"]], changed[C["updated_us"]], changed[C["last_seen_us"]] = "degraded", 5, 2**60
    assert index.update_rows([changed]) is None
    index.resort()
    first = index.query(parse_query(""), Sort.price_asc, 0, 1).rows[0]
    assert index.rows[int(first)][0] == target[0] != cheapest
    assert index.item(int(first))["availability"] == "degraded" and index.item(int(first))["vcpu"] == 64.0
    for flt, hit in (("min_vcpu=64", True), ("min_memory_gb=512", True), ("min_gpu_memory_gb=1", False),
                     ("availability=degraded&max_price_per_gpu=0.005", True), ("max_price=0.01", True)):
        ids = [index.rows[int(i)][0] for i in index.query(parse_query(flt), Sort.price_asc, 0, 100).rows]
        assert (target[0] in ids) is hit, flt
    assert index.query(parse_query(""), Sort.updated_desc, 0, 100).rows[-1] == first
    assert index.provider_last_seen()[target[1]] == 2**60
    renamed = list(changed)
    renamed[C["name"]] = "new name"
    new = list(rows[0])
    new[0] = "ffffffff-0000-0000-0000-000000000000"
    merged = index.update_rows([renamed, new])
    assert merged is not None and len(merged) == 21
    assert {tuple(map(str, r)) for r in merged} >= {tuple(map(str, renamed)), tuple(map(str, new))}
    assert index.update_rows([new]) is not None  # an unknown id alone also asks for a rebuild


def test_provider_last_seen_is_the_newest_per_provider():
    rows = _rows(50, random.Random(6))
    index = OfferIndex(rows)
    want: dict[str, int] = {}
    for r in rows:
        want[r[1]] = max(want.get(r[1], r[C["last_seen_us"]]), r[C["last_seen_us"]])
    assert index.provider_last_seen() == want
