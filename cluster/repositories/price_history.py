"""Price history (the `price_history` change points of each offer) and the offers a forecast can answer for."""
from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

__all__ = ["forecast_offers", "history_points", "history_as_of"]

_OFFERS = """
SELECT o.id::text AS offer_id, o.provider_id AS provider, o.external_id, o.name AS instance, o.gpu_type,
       o.gpu_count, o.region, o.pricing, o.price_per_hour::float8 AS price, o.currency
FROM offers o
ORDER BY o.id
"""

# one row per (offer, UTC day): the last price recorded that day (the daily as-of value's source)
_HISTORY = """
SELECT DISTINCT ON (h.offer_id, day) h.offer_id::text AS offer_id,
       (h.recorded_at AT TIME ZONE 'UTC')::date AS day, h.price_per_hour::float8 AS price
FROM price_history h, LATERAL (SELECT (h.recorded_at AT TIME ZONE 'UTC')::date) d(day)
WHERE h.price_per_hour > 0 AND ($1::date IS NULL OR h.recorded_at < ($1::date + 1)::timestamp AT TIME ZONE 'UTC')
ORDER BY h.offer_id, day, h.recorded_at DESC, h.id DESC
"""


async def forecast_offers(conn: asyncpg.Pool | asyncpg.Connection) -> list[dict[str, Any]]:
    """Every offer with what a forecast needs to match and price it (current price per hour, USD)."""
    return [dict(r) for r in await conn.fetch(_OFFERS)]


async def history_points(conn: asyncpg.Pool | asyncpg.Connection, until: date | None = None) -> list[dict[str, Any]]:
    """Daily last recorded price of every offer with history, up to `until` (inclusive), oldest first."""
    return [dict(r) for r in await conn.fetch(_HISTORY, until)]


async def history_as_of(conn: asyncpg.Pool | asyncpg.Connection) -> date | None:
    """The last UTC day any price was recorded: the day every series is carried to (as-of)."""
    return await conn.fetchval("SELECT max((recorded_at AT TIME ZONE 'UTC')::date) FROM price_history")
