"""Price history reads: bucket statistics by GPU models and time, and keyset pages of one offer.

Both read `price_history` through its index on (offer_id, recorded_at DESC): the GPU query first picks
the offers of the matching models (offers_gpu_type index), then their points in the range.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

# Grouping keys in the "C" collation: sorting ~6,000 points by locale-aware text compare cost more than
# the whole rest of the query (EXPLAIN ANALYZE on the bundled A100 history).
_BUCKETS = """
SELECT o.provider_id COLLATE "C" AS provider, o.region COLLATE "C" AS region, o.pricing COLLATE "C" AS pricing,
       date_trunc($4, h.recorded_at, 'UTC') AS bucket_start,
       min(h.price_per_hour)::float8 AS min,
       (percentile_cont(0.5) WITHIN GROUP (ORDER BY h.price_per_hour))::float8 AS median,
       max(h.price_per_hour)::float8 AS max,
       count(*)::int AS samples
FROM offers o JOIN price_history h ON h.offer_id = o.id
WHERE o.gpu_type = ANY($1::text[]) AND h.recorded_at >= $2 AND h.recorded_at < $3
  AND ($5::text IS NULL OR o.provider_id = $5) AND ($6::text IS NULL OR o.pricing = $6)
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4
"""


async def bucket_stats(pool: asyncpg.Pool, gpus: list[str], start: datetime, end: datetime, bucket: str,
                       provider: str | None = None, pricing: str | None = None) -> list[dict[str, Any]]:
    """Per (provider, region, pricing, bucket): min/median/max and count of the points recorded in it."""
    rows = await pool.fetch(_BUCKETS, gpus, start, end, bucket, provider, pricing)
    return [dict(r) for r in rows]


async def offer_exists(pool: asyncpg.Pool, offer_id: str) -> bool:
    return bool(await pool.fetchval("SELECT EXISTS (SELECT 1 FROM offers WHERE id = $1::uuid)", offer_id))


async def offer_points(pool: asyncpg.Pool, offer_id: str, start: datetime | None, end: datetime | None,
                       after: tuple[datetime, int] | None, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` points of one offer, newest first, strictly after the keyset position `after`."""
    rows = await pool.fetch(
        """SELECT id, price_per_hour::float8 AS price_per_hour, availability, recorded_at FROM price_history
           WHERE offer_id = $1::uuid AND ($2::timestamptz IS NULL OR recorded_at >= $2)
             AND ($3::timestamptz IS NULL OR recorded_at < $3)
             AND ($4::timestamptz IS NULL OR (recorded_at, id) < ($4, $5::bigint))
           ORDER BY recorded_at DESC, id DESC LIMIT $6""",
        offer_id, start, end, after[0] if after else None, after[1] if after else 0, limit)
    return [dict(r) for r in rows]
