"""The search cache key's canonical form (domain.search): set filters sorted by name with enum lists as plain
sorted values, then sort, offset and size. Replicas share the Redis cache, so the form is a contract."""
from __future__ import annotations

import hashlib

from domain.search import parse_query


def _key(canonical: str) -> str:
    return hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()


def test_cache_key_is_the_hash_of_the_canonical_query():
    q = parse_query("pricing=spot,on_demand&gpu_type=H100,A100&max_price=3&page=2&page_size=10&sort=price_desc")
    assert q.active()["pricing"] == ["on_demand", "spot"]
    assert [type(v) for v in q.active()["pricing"]] == [str, str]   # enum members become their plain values
    assert q.cache_key() == _key("gpu_type=['A100', 'H100']&max_price=3.0&pricing=['on_demand', 'spot']"
                                 "&sort=price_desc&offset=10&size=10")


def test_cache_key_of_the_first_page_without_filters():
    assert parse_query("").cache_key() == _key("sort=price_asc&offset=0&size=20")
