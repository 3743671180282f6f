"""Test data and SQL oracles for marketplace search: offers inserted with SQL, queries re-run in SQL."""
from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

PROVIDERS = ("srch-a", "srch-b", "srch-c")  # srch-c's offers were last seen hours ago: a stale provider
GPUS = {"H100": 80, "A100-80GB": 80, "L4": 24, "A10G": 24, "RTX-4090": 24}
REGIONS = (("us-east1", "US", "NA"), ("europe-west4", "NL", "EU"), ("asia-east1", "TW", "AS"),
           ("helsinki-finland-4", "FI", "EU"), ("us-west-2", "US", "NA"), ("mars-base-1", None, None))
TAGS = ("nvlink", "sxm", "pcie", "secure", "community")
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def make_offers(n: int = 240, seed: int = 7) -> list[dict[str, Any]]:
    """Offers with every field varied, ties in price and updated_at (to exercise the id tiebreak), NULLs."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        provider = PROVIDERS[i % 3]
        gpu = rnd.choice(list(GPUS))
        count = rnd.choice([1, 1, 2, 4, 8])
        region, country, continent = rnd.choice(REGIONS)
        price = rnd.choice([1.5, 2.0, 2.49, 3.2]) if i % 5 == 0 else round(rnd.uniform(0.1, 40), rnd.choice([2, 6]))
        tags = sorted(rnd.sample(TAGS, rnd.randint(0, 3)))
        form = "sxm5" if "sxm" in tags else "pcie"
        out.append({
            "id": uuid.UUID(int=rnd.getrandbits(128), version=4), "provider_id": provider,
            "external_id": f"{provider}-{i}", "name": f"{gpu} {form} x{count} {region}-{i % 7}",
            "gpu_type": gpu, "gpu_count": float(count), "gpu_memory_gb": None if i % 11 == 0 else float(GPUS[gpu]),
            "vcpu": None if i % 13 == 0 else float(rnd.choice([4, 8, 16, 32, 64]) * count),
            "memory_gb": float(rnd.choice([16, 32, 64, 128]) * count), "storage_gb": None if i % 4 else 500.0,
            "price_per_hour": price, "price_per_gpu_hour": round(price / count, 6),
            "pricing": rnd.choice(["on_demand", "on_demand", "spot", "interruptible"]),
            "region": region, "country": country, "continent": continent,
            "availability": rnd.choice(["up", "up", "up", "degraded", "down"]), "tags": tags,
            "updated_at": NOW - timedelta(seconds=rnd.choice([0, 10, 10, 20]) + i % 17),
            "last_seen_at": NOW - timedelta(hours=5) if provider == "srch-c" else NOW,
        })
    return out


async def insert_offers(pg, offers: list[dict[str, Any]]) -> None:
    await pg.executemany("INSERT INTO providers (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING",
                         [(p,) for p in sorted({o["provider_id"] for o in offers})])
    cols = list(offers[0])
    await pg.copy_records_to_table("offers", records=[tuple(o[c] for c in cols) for o in offers], columns=cols)


async def bump_generation(redis_client, settings) -> int:
    return int(await redis_client.incr(settings.redis_prefix + "catalog:generation"))


_ORDER = {"price_asc": "price_per_hour, id", "price_desc": "price_per_hour DESC, id",
          "price_per_gpu_asc": "price_per_gpu_hour, id", "updated_desc": "updated_at DESC, id"}


def sql_for(filters: dict[str, Any], sort: str = "price_asc") -> tuple[str, list[Any]]:
    """The same query in SQL: `filters` uses canonical GPU names and lists for multi-valued filters."""
    where, args = ["provider_id = ANY($1)"], [list(PROVIDERS)]

    def arg(v: Any) -> str:
        args.append(v)
        return f"${len(args)}"

    ops = {"gpu_count": "gpu_count = {}", "min_gpu_count": "gpu_count >= {}", "min_gpu_memory_gb": "gpu_memory_gb >= {}",
           "max_price": "price_per_hour::float8 <= {}", "max_price_per_gpu": "price_per_gpu_hour::float8 <= {}",
           "min_vcpu": "vcpu >= {}", "min_memory_gb": "memory_gb >= {}", "tags": "tags @> {}",
           "q": "to_tsvector('simple', offer_search_text(name, gpu_type, tags)) @@ plainto_tsquery('simple', {})"}
    for key, value in filters.items():
        if key in ops:
            where.append(ops[key].format(arg(value)))
        else:  # gpu_type, provider, region, country, continent, pricing, availability
            column = "provider_id" if key == "provider" else key
            where.append(f"{column}::text = ANY({arg(list(value))})")
    return f"SELECT id::text FROM offers WHERE {' AND '.join(where)} ORDER BY {_ORDER[sort]}", args


async def sql_ids(pg, filters: dict[str, Any], sort: str = "price_asc") -> list[str]:
    sql, args = sql_for(filters, sort)
    return [r[0] for r in await pg.fetch(sql, *args)]


async def api_all(http: httpx.AsyncClient, params: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """Every item of a search, page by page (page_size 100); returns (total, items)."""
    items: list[dict[str, Any]] = []
    page, total = 1, None
    while True:
        r = await http.get("/providers", params={**params, "page": page, "page_size": 100})
        assert r.status_code == 200, r.text
        body = r.json()
        total = body["total"] if total is None else total
        assert body["total"] == total
        items += body["items"]
        if len(body["items"]) < 100:
            return total, items
        page += 1


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll an async predicate until it returns a truthy value; returns (value, seconds waited)."""
    t0 = time.monotonic()
    while True:
        value = await predicate()
        if value:
            return value, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
