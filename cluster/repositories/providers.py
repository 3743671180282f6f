"""Providers and their sync health: the row ingestion creates per provider, the health it records after
every sync, and the one health lookup that `GET /providers/health` and search's staleness check share."""
from __future__ import annotations

from typing import Any

import asyncpg

_UPSERT = """
INSERT INTO providers (id, name, api_endpoint) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET name = CASE WHEN EXCLUDED.name <> EXCLUDED.id THEN EXCLUDED.name ELSE providers.name END,
    api_endpoint = coalesce(EXCLUDED.api_endpoint, providers.api_endpoint)
"""

_RECORD_HEALTH = """
WITH p AS (
    UPDATE providers SET status = $2,
        regions = coalesce((SELECT array_agg(DISTINCT region ORDER BY region) FROM offers WHERE provider_id = $1),
                           '{}')
    WHERE id = $1 RETURNING id
)
INSERT INTO provider_health AS h (provider_id, status, last_sync_ts, last_error, latency_ms, offers, source, details,
                                  updated_at)
VALUES ($1, $2, CASE WHEN $7 THEN now() END, $3, $4,
        (SELECT count(*) FROM offers WHERE provider_id = $1 AND availability <> 'down'), $5, $6, now())
ON CONFLICT (provider_id) DO UPDATE SET status = EXCLUDED.status,
    last_sync_ts = CASE WHEN $7 THEN now() ELSE h.last_sync_ts END, last_error = EXCLUDED.last_error,
    latency_ms = EXCLUDED.latency_ms, offers = EXCLUDED.offers, source = coalesce(EXCLUDED.source, h.source),
    details = EXCLUDED.details, updated_at = now()
"""

_HEALTH = """
SELECT p.id, p.name, h.status, h.last_sync_ts, h.last_error, h.latency_ms, h.offers, h.source, h.details
FROM providers p LEFT JOIN provider_health h ON h.provider_id = p.id
"""


async def upsert(db: asyncpg.Pool | asyncpg.Connection, provider: str, name: str, endpoint: str | None) -> None:
    """Create the provider row, or rename it (a name equal to the id never replaces a real one)."""
    await db.execute(_UPSERT, provider, name, endpoint)


async def record_health(pool: asyncpg.Pool, provider: str, status: str, *, last_error: str | None,
                        latency_ms: float | None, source: str | None, details: dict[str, Any],
                        synced: bool) -> None:
    """Upsert the provider's health with its current offer count and regions; `synced` False keeps
    last_sync_ts, and a None `source` keeps the stored one."""
    await pool.execute(_RECORD_HEALTH, provider, status, last_error, latency_ms, source, details, synced)


async def health(pool: asyncpg.Pool, timeout: float | None = None) -> dict[str, dict[str, Any]]:
    """Every stored provider -> {id, name, status, last_sync_ts, last_error, latency_ms, offers, source,
    details}; the health fields are None for a provider with no health recorded yet."""
    return {r["id"]: dict(r) for r in await pool.fetch(_HEALTH, timeout=timeout)}
