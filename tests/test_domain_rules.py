"""Boundaries and exact answers of the pure rules in domain/ that the other tests leave open (found by
`make mutate`: each test here kills mutants that survived the rest)."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from domain import gpu_alias
from domain.audit import GENESIS, anonymize_ip, canonical, chain_hash, now_utc, ts_text, verify_chain
from domain.geo import UnknownRegion, locate
from domain.gpus import UnknownGpu, matching_gpus, resolve
from domain.models import utcnow
from domain.passwords import MAX_LENGTH, MIN_LENGTH, PasswordPolicy, WeakPassword
from domain.ratelimit import TokenBucket
from domain.search import (ExportQuery, QueryError, SearchQuery, document_terms, parse_query,
                           query_parameters_openapi)


# ---- search query parsing -----------------------------------------------------------------------------
def test_query_error_details_and_message():
    with pytest.raises(QueryError) as exc:
        parse_query(b"page=2&page=3")
    assert exc.value.details == [{"field": "page", "message": "given more than once"}]
    assert str(exc.value) == "invalid query: page"
    with pytest.raises(QueryError) as exc:
        parse_query("colour=red&max_price=-1&max_price_per_gpu=-2&gpu_type=%25bad")
    assert exc.value.details == [
        {"field": "gpu_type", "message": "String should match pattern '^[A-Za-z0-9][A-Za-z0-9 ._+/:()\\-]{0,127}$'"},
        {"field": "max_price", "message": "Input should be greater than or equal to 0"},
        {"field": "max_price_per_gpu", "message": "Input should be greater than or equal to 0"},
        {"field": "colour", "message": "unknown query parameter"}]
    assert str(exc.value) == "invalid query: gpu_type, max_price, max_price_per_gpu, colour"
    with pytest.raises(QueryError) as exc:  # a blank value is a value (too short), not an absent parameter
        parse_query("q=")
    assert [d["field"] for d in exc.value.details] == ["q"]
    assert parse_query(b"gpu_type=H100,%20,L4%20").gpu_type == ["H100", "L4"]
    assert parse_query("q=caf\xe9".encode("latin-1")).q == "caf\xe9"  # raw bytes are read as latin-1


def test_active_filters_are_canonical():
    q = parse_query("pricing=spot,on_demand,spot&country=de&gpu_type=")
    assert q.active() == {"country": ["DE"], "pricing": ["on_demand", "spot"], "sort": q.sort, "page": 1,
                          "page_size": 20}
    assert parse_query("").cache_key() == SearchQuery().cache_key() and len(SearchQuery().cache_key()) == 24


def test_document_terms_keep_lexeme_and_lowercase_runs():
    assert document_terms(["us-east-1", "A100"]) == {"us-east-1", "us", "east", "1", "A100", "a100"}


def test_openapi_parameters_inline_every_schema():
    params = {p["name"]: p for p in query_parameters_openapi(SearchQuery)}
    assert list(params) == list(SearchQuery.model_fields)
    assert all(p["in"] == "query" and p["required"] is False for p in params.values())
    assert params["gpu_type"]["explode"] is True and "explode" not in params["page"]
    assert params["page"] == {"name": "page", "in": "query", "required": False,
                              "schema": {"default": 1, "maximum": 100000, "minimum": 1, "type": "integer"},
                              "description": "1-based page number (instead of cursor)"}
    assert params["sort"]["schema"]["enum"] == ["price_asc", "price_desc", "price_per_gpu_asc", "updated_desc"]
    assert params["pricing"]["schema"]["items"]["enum"] == ["on_demand", "spot", "interruptible"]
    text = repr(params)
    assert "$ref" not in text and "'title'" not in text
    fmt = {p["name"]: p for p in query_parameters_openapi(ExportQuery)}["format"]
    assert fmt["schema"]["pattern"] == "^(csv|json)$" and fmt["description"] == "csv or json"


# ---- audit chain helpers ------------------------------------------------------------------------------
def _entry(**kw):
    e = {"tenant_id": "t1", "user_id": None, "action": "a", "target_type": None, "target_id": 5,
         "ts": "2026-01-01T00:00:00.000000+00:00", "ip": None, "user_agent": None, "details": {}}
    return {**e, **kw}


def test_canonical_keeps_nulls_text_timestamps_and_utf8():
    body = canonical(_entry(details={"none": None, "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
                                     "name": "caf\xe9", "flag": True}))
    assert body == ('{"action":"a","details":{"flag":true,"name":"caf\xe9","none":null,'
                    '"when":"2026-01-02T03:04:05.000000+00:00"},"ip":null,"target_id":"5","target_type":null,'
                    '"tenant_id":"t1","ts":"2026-01-01T00:00:00.000000+00:00","user_agent":null,"user_id":null}'
                    ).encode("utf-8")


def test_timestamps_are_utc_text_whatever_the_local_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert ts_text(datetime(2026, 1, 1, 12, 0)) == "2026-01-01T12:00:00.000000+00:00"  # naive = UTC
        assert ts_text(datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))) == \
            "2026-01-01T10:00:00.000000+00:00"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert now_utc().tzinfo is timezone.utc and utcnow().tzinfo is timezone.utc


def test_anonymize_ip_keeps_exactly_the_network():
    assert anonymize_ip("192.168.7.200") == "192.168.7.0"  # /24, not /25
    assert anonymize_ip("2001:db8:1:ffff::5") == "2001:db8:1::"  # /48, not /49
    assert anonymize_ip("") is None and anonymize_ip(None) is None


def test_broken_links_name_their_tenant_and_reason():
    es, prev = [], GENESIS
    for i in range(3):
        e = _entry(id=i + 1, tenant_id=7, hash_prev=prev)
        e["hash_curr"] = prev = chain_hash(prev, e)
        es.append(e)
    bad_link = [es[0], dict(es[1], hash_prev="f" * 64)]
    assert verify_chain(bad_link)[1].as_dict() == {
        "tenant_id": "7", "entry_id": 2, "reason": "hash_prev does not match the previous entry's hash_curr"}
    bad_hash = [es[0], dict(es[1], action="b")]
    assert verify_chain(bad_hash)[1].as_dict() == {
        "tenant_id": "7", "entry_id": 2, "reason": "hash_curr does not match the entry's content"}
    no_tenant = [dict(es[0], tenant_id=None)]
    assert verify_chain(no_tenant)[1].tenant_id is None


# ---- passwords and the token bucket ---------------------------------------------------------------------
def test_password_length_and_variety_boundaries():
    pol = PasswordPolicy()
    pol.check("abcde" + "a" * (MIN_LENGTH - 5))  # exactly the minimum, exactly 5 distinct characters
    pol.check("abcde" + "a" * (MAX_LENGTH - 5))  # exactly the maximum
    for pw, msg in (("abcde" + "a" * (MIN_LENGTH - 6), f"password must have at least {MIN_LENGTH} characters"),
                    ("abcde" + "a" * (MAX_LENGTH - 4), f"password must have at most {MAX_LENGTH} characters"),
                    ("abcd" * MIN_LENGTH, "password must use at least 5 distinct characters")):
        with pytest.raises(WeakPassword) as exc:
            pol.check(pw)
        assert str(exc.value) == msg


def test_needs_rehash_only_for_other_parameters():
    current = PasswordPolicy(time_cost=1, memory_kib=1024)
    h = current.hash("a long enough secret")
    assert current.needs_rehash(h) is False
    assert PasswordPolicy(time_cost=2, memory_kib=1024).needs_rehash(h) is True
    assert current.needs_rehash("!") is False  # erased account: no hash to upgrade


def test_token_bucket_limits_and_refill_from_any_start():
    for rate, burst in ((0, 5), (-1, 5), (1, 0.5), (0, 0)):
        with pytest.raises(ValueError, match=r"^rate must be > 0 and burst >= 1$"):
            TokenBucket.full(rate, burst, 0.0)
    assert TokenBucket.full(0.5, 1, 0.0).tokens == 1.0
    b = TokenBucket.full(rate=2, burst=4, now=100.0)
    assert b.grant(100.0, 4) == 4
    assert b.take(100.25) is False and b.tokens == pytest.approx(0.5)
    assert b.wait_s(100.25) == pytest.approx(0.25)
    assert b.take(100.5) is True and b.updated == 100.5


# ---- names of GPUs and places ----------------------------------------------------------------------------
def test_gpu_name_errors_and_forms():
    for raw in ("", "   "):
        with pytest.raises(UnknownGpu, match=r"^empty GPU name$"):
            resolve(raw)
        assert matching_gpus(raw) == []
    with pytest.raises(UnknownGpu, match=r"^unknown GPU name 'zzz'$"):
        resolve("zzz")
    assert resolve("NVIDIA H100 NVL 94GB").name == "H100-NVL"  # form from the name, not an exact alias
    assert resolve("H100", hint="h100-nvl-x8").name == "H100-NVL"
    assert matching_gpus("NVIDIA H100-PCIE-80GB") == ["H100-PCIe"]
    assert matching_gpus("A100 92GB") == ["A100-80GB-SXM", "A100-80GB-PCIe"]  # 15 % of 80 GB, inclusive
    assert matching_gpus("A100 93GB") == ["A100-80GB-SXM"]  # beyond: the closest model by name
    assert gpu_alias.fold("A100-80GB_pcie") == "a10080gbpcie"


def test_region_errors_and_geolocations():
    for raw, msg in (("", "empty region"), ("   ", "empty region"), ("Narnia-7", "unknown region 'Narnia-7'"),
                     ("Foo, ZZ", "unknown country code 'ZZ'"), ("x,", "unknown geolocation 'x,'"),
                     ("Foo, USA", "unknown geolocation 'Foo, USA'")):
        with pytest.raises(UnknownRegion) as exc:
            locate(raw)
        assert str(exc.value) == msg, raw
    assert locate("Texas, us") == ("US", "NA") and locate("us-central1") == ("US", "NA")
