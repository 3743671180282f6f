"""The search read model: offer rows in `domain.offer_index.COLUMNS` order, one offer's extras and history."""
from __future__ import annotations

from typing import Any

import asyncpg

from cluster.repositories import price_history as price_history_repo

_SELECT = """
SELECT o.id::text, o.provider_id, o.external_id, o.name, o.gpu_type, o.gpu_count, o.gpu_memory_gb, o.vcpu,
       o.memory_gb, o.storage_gb, o.price_per_hour::float8, o.price_per_gpu_hour::float8, o.currency::text,
       o.pricing, o.region, o.country::text, o.continent::text, o.availability, o.tags,
       tsvector_to_array(to_tsvector('simple', offer_search_text(o.name, o.gpu_type, o.tags))),
       (extract(epoch FROM o.updated_at) * 1000000)::int8, (extract(epoch FROM o.last_seen_at) * 1000000)::int8
FROM offers o
"""


def _tuples(records: list[asyncpg.Record]) -> list[tuple]:
    return [tuple(r) for r in records]


async def load_all(pool: asyncpg.Pool) -> list[tuple]:
    """Every offer, in a repeatable-read snapshot."""
    async with pool.acquire() as conn:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return _tuples(await conn.fetch(_SELECT))


async def load_ids(pool: asyncpg.Pool, ids: list[str]) -> list[tuple]:
    return _tuples(await pool.fetch(_SELECT + " WHERE o.id = ANY($1::uuid[])", ids))


async def load_changed_since(pool: asyncpg.Pool, since_us: int) -> tuple[list[tuple], int]:
    """Offers updated or seen at/after `since_us` (µs since epoch), and the total number of offers."""
    async with pool.acquire() as conn:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            rows = await conn.fetch(
                _SELECT + " WHERE o.updated_at >= to_timestamp($1::float8 / 1e6)"
                " OR o.last_seen_at >= to_timestamp($1::float8 / 1e6)", float(since_us))
            total = await conn.fetchval("SELECT count(*) FROM offers")
    return _tuples(rows), int(total)


async def price_history(pool: asyncpg.Pool, offer_id: str, limit: int) -> list[dict[str, Any]]:
    """The offer's newest `limit` history points, as an item's detail shows them."""
    rows = await price_history_repo.offer_points(pool, offer_id, None, None, None, limit)
    return [{"price_per_hour": r["price_per_hour"], "availability": r["availability"],
             "recorded_at": r["recorded_at"].isoformat().replace("+00:00", "Z")} for r in rows]


async def offer_extras(pool: asyncpg.Pool, offer_id: str) -> dict[str, Any] | None:
    r = await pool.fetchrow(
        "SELECT external_id, gpu_vendor, form_factor, attributes, created_at, last_seen_at FROM offers WHERE id = $1::uuid",
        offer_id)
    if r is None:
        return None
    return {"external_id": r["external_id"], "gpu_vendor": r["gpu_vendor"], "form_factor": r["form_factor"],
            "attributes": r["attributes"], "created_at": r["created_at"].isoformat().replace("+00:00", "Z"),
            "last_seen_at": r["last_seen_at"].isoformat().replace("+00:00", "Z")}
