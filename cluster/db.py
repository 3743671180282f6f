"""PostgreSQL access: pools (created in a lifecycle), retried transactions, and `migrate()` (database and
schema brought up to date by `cluster.migrations.runner`)."""
from __future__ import annotations

import asyncio
import json
import random
from typing import Awaitable, Callable, TypeVar

import asyncpg

from cluster.migrations.runner import Migration, MigrationError, apply_migrations, ensure_database, load_migrations
from cluster.settings import Settings

__all__ = ["Migration", "MigrationError", "apply_migrations", "create_pool", "ensure_database", "load_migrations",
           "migrate", "run_transaction"]
T = TypeVar("T")


async def migrate(settings: Settings) -> list[int]:
    await ensure_database(settings)
    conn = await asyncpg.connect(settings.database_url, timeout=10)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


async def _init_conn(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(settings: Settings, **kw) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        settings.database_url,
        min_size=kw.pop("min_size", settings.db_pool_min),
        max_size=kw.pop("max_size", settings.db_pool_max),
        init=_init_conn,
        timeout=kw.pop("timeout", 5),
        **kw,
    )


_RETRYABLE = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)


async def run_transaction(pool: asyncpg.Pool, work: Callable[[asyncpg.Connection], Awaitable[T]], *,
                          isolation: str = "read_committed", attempts: int = 8) -> T:
    """Run `work(conn)` in one transaction, again from the start when PostgreSQL aborts it with a
    serialization failure or a deadlock (the transaction changed nothing; retrying is the documented remedy).
    REPEATABLE READ / SERIALIZABLE work that appends to the audit chain needs this: a concurrent append
    to the same chain aborts it rather than letting it link to a stale head."""
    for attempt in range(1, attempts + 1):
        try:
            async with pool.acquire() as conn, conn.transaction(isolation=isolation):
                return await work(conn)
        except _RETRYABLE:
            if attempt == attempts:
                raise
            await asyncio.sleep(random.uniform(0.002, 0.01 * attempt))  # jitter: the racers spread out
    raise AssertionError("unreachable")
