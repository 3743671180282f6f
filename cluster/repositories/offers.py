"""Offers as ingestion writes them: one provider's batch staged with COPY, then upserted in one statement
(new offers inserted, changed ones updated, price_history appended where price or availability changed),
and on a full sync the offers not seen marked 'down'. All of it runs in the caller's transaction, under the
provider's advisory lock (`begin_ingest`). Also: the recorded price history backfilled from a change log.
"""
from __future__ import annotations

import io
from datetime import datetime
from typing import Awaitable, Callable, Iterable

import asyncpg

from cluster.repositories import require_transaction

STAGE_COLUMNS = [
    "external_id", "name", "gpu_type", "gpu_vendor", "gpu_count", "gpu_memory_gb", "form_factor", "vcpu",
    "memory_gb", "storage_gb", "price_per_hour", "price_per_gpu_hour", "currency", "pricing", "region", "country",
    "continent", "availability", "tags", "attributes",
]

_CREATE_STAGE = """
CREATE TEMP TABLE _offer_stage (
    external_id text, name text, gpu_type text, gpu_vendor text, gpu_count double precision,
    gpu_memory_gb double precision, form_factor text, vcpu double precision, memory_gb double precision,
    storage_gb double precision, price_per_hour numeric(14, 6), price_per_gpu_hour numeric(14, 6),
    currency char(3), pricing text, region text, country char(2), continent char(2), availability text,
    tags text[], attributes text
) ON COMMIT DROP
"""

_CONTENT = ("name", "gpu_type", "gpu_vendor", "gpu_count", "gpu_memory_gb", "form_factor", "vcpu", "memory_gb",
            "storage_gb", "price_per_hour", "price_per_gpu_hour", "currency", "pricing", "region", "country",
            "continent", "availability", "tags", "attributes")
_STAGED = ", ".join(f"s.{c}" for c in _CONTENT[:-1]) + ", s.attributes::jsonb"
_DIFFERS = "(" + ", ".join(f"o.{c}" for c in _CONTENT) + ") IS DISTINCT FROM (" + _STAGED + ")"

# $1 provider, $2 sync ts, $3 touch threshold (unchanged rows get last_seen_at only when older than it).
# `cand` keeps only new, changed or to-be-touched rows, so unchanged offers are neither written nor locked.
# New offers take a plain INSERT and known ones an UPDATE by id: the pipeline is the only writer of
# offers and holds the provider's advisory lock, so no other transaction can add the same
# (provider_id, external_id) meanwhile; a plain insert skips ON CONFLICT's speculative insertion, and
# UPDATE .. FROM can return cand's previous price, so no step joins on the text key. All CTEs see the
# table as it was before the statement: cand holds the previous price and availability.
_UPSERT = f"""
WITH cand AS (
    SELECT s.*, o.id AS old_id, o.price_per_hour AS old_price, o.availability AS old_avail,
           (o.id IS NULL OR {_DIFFERS}) AS differs
    FROM _offer_stage s LEFT JOIN offers o ON o.provider_id = $1 AND o.external_id = s.external_id
    WHERE o.id IS NULL OR {_DIFFERS} OR o.last_seen_at < $3
), ins AS (
    INSERT INTO offers (provider_id, external_id, {", ".join(_CONTENT)}, last_seen_at, updated_at)
    SELECT $1, external_id, {", ".join(_CONTENT[:-1])}, attributes::jsonb, $2, $2 FROM cand WHERE old_id IS NULL
    RETURNING id, external_id, gpu_type, gpu_count, region, pricing, price_per_hour, availability
), upd AS (
    UPDATE offers o SET {", ".join(f"{c} = c.{c}" for c in _CONTENT[:-1])}, attributes = c.attributes::jsonb,
        last_seen_at = $2, updated_at = CASE WHEN c.differs THEN $2 ELSE o.updated_at END
    FROM cand c WHERE c.old_id IS NOT NULL AND o.id = c.old_id
    RETURNING o.id, o.external_id, o.gpu_type, o.gpu_count, o.region, o.pricing, o.price_per_hour, o.availability,
              c.old_price, c.old_avail, c.differs
), hist AS (
    INSERT INTO price_history (offer_id, price_per_hour, availability, recorded_at)
    SELECT id, price_per_hour, availability, $2 FROM ins
    UNION ALL
    SELECT id, price_per_hour, availability, $2 FROM upd
    WHERE old_price <> price_per_hour OR old_avail <> availability
    RETURNING id, offer_id
)
SELECT 'inserted' AS kind, h.id AS hid, i.id, i.external_id, i.gpu_type, i.gpu_count, i.region, i.pricing,
       NULL::numeric AS old_price, i.price_per_hour AS new_price, i.availability
FROM ins i LEFT JOIN hist h ON h.offer_id = i.id
UNION ALL
SELECT 'updated', h.id, u.id, u.external_id, u.gpu_type, u.gpu_count, u.region, u.pricing, u.old_price,
       u.price_per_hour,
       u.availability
FROM upd u LEFT JOIN hist h ON h.offer_id = u.id
WHERE u.differs
"""

# Offers of the provider absent from a full sync: availability 'down', one history row each.
_MARK_DOWN = """
WITH gone AS (
    UPDATE offers o SET availability = 'down', updated_at = $2
    WHERE o.provider_id = $1 AND o.availability <> 'down'
      AND NOT EXISTS (SELECT 1 FROM _offer_stage s WHERE s.external_id = o.external_id)
    RETURNING o.id, o.external_id, o.gpu_type, o.gpu_count, o.region, o.pricing, o.price_per_hour
), hist AS (
    INSERT INTO price_history (offer_id, price_per_hour, availability, recorded_at)
    SELECT id, price_per_hour, 'down', $2 FROM gone
    RETURNING id, offer_id
)
SELECT 'down' AS kind, hist.id AS hid, gone.id, gone.external_id, gone.gpu_type, gone.gpu_count, gone.region,
       gone.pricing,
       gone.price_per_hour AS old_price, gone.price_per_hour AS new_price, 'down' AS availability
FROM gone JOIN hist ON hist.offer_id = gone.id
"""

# The upsert is one statement over a whole batch: PostgreSQL's JIT spent ~0.8 s compiling it per 50k-row
# batch (more than a quarter of its run time) and the default 4 MB work_mem sent its sorts to disk.
_TXN_SETTINGS = "SET LOCAL jit = off; SET LOCAL work_mem = '64MB'"
_ANALYZE_ABOVE = 5000  # staged rows past which the planner needs the staging table's statistics


async def has_offers(pool: asyncpg.Pool, provider: str) -> bool:
    return bool(await pool.fetchval("SELECT EXISTS (SELECT 1 FROM offers WHERE provider_id = $1)", provider))


async def begin_ingest(conn: asyncpg.Connection, provider: str) -> None:
    """Take the provider's ingest lock (until the transaction ends) and create the empty staging table."""
    require_transaction(conn, "begin_ingest")
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", "ingest:" + provider)
    await conn.execute(_CREATE_STAGE)
    await conn.execute(_TXN_SETTINGS)


async def stage(conn: asyncpg.Connection, records: Iterable[tuple], count: int) -> None:
    """COPY `count` rows (in `STAGE_COLUMNS` order) into the staging table."""
    await conn.copy_records_to_table("_offer_stage", records=records, columns=STAGE_COLUMNS)
    if count > _ANALYZE_ABOVE:
        await conn.execute("ANALYZE _offer_stage")


async def upsert_staged(conn: asyncpg.Connection, provider: str, ts: datetime,
                        touch_before: datetime) -> list[asyncpg.Record]:
    """Insert the new staged offers, update the changed ones; unchanged ones get last_seen_at = ts only
    when it is older than `touch_before`. Returns one row per change (kind 'inserted' | 'updated', the
    history row id `hid` when one was appended, old and new price)."""
    return list(await conn.fetch(_UPSERT, provider, ts, touch_before))


async def mark_missing_down(conn: asyncpg.Connection, provider: str, ts: datetime) -> list[asyncpg.Record]:
    """Mark the provider's offers absent from the staging table 'down' (kind 'down' rows, as above)."""
    return list(await conn.fetch(_MARK_DOWN, provider, ts))


async def backfill_history(pool: asyncpg.Pool, provider: str, before: datetime,
                           load_csv: Callable[[], Awaitable[bytes]]) -> int:
    """Add recorded price changes (CSV lines external_id,price,recorded_at from `load_csv`) as history of
    the provider's stored offers, once: nothing is added when history older than `before` exists, or when
    the provider has no offers. Returns rows added."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", "backfill:" + provider)
        done = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM price_history h JOIN offers o ON o.id = h.offer_id "
            "WHERE o.provider_id = $1 AND h.recorded_at < $2)", provider, before)
        if done or not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM offers WHERE provider_id = $1)", provider):
            return 0
        source = io.BytesIO(await load_csv())
        await conn.execute("CREATE TEMP TABLE _hist (external_id text, price numeric(14,6), recorded_at timestamptz)"
                           " ON COMMIT DROP")
        await conn.copy_to_table("_hist", source=source, format="csv")
        res = await conn.execute(
            "INSERT INTO price_history (offer_id, price_per_hour, availability, recorded_at) "
            "SELECT o.id, h.price, 'up', h.recorded_at FROM _hist h "
            "JOIN offers o ON o.provider_id = $1 AND o.external_id = h.external_id "
            "WHERE h.recorded_at < $2", provider, before)
        return int(res.split()[-1])
