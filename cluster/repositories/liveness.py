"""The round trip readiness checks time: a query that touches no table."""
from __future__ import annotations

import asyncpg


async def ping(conn: asyncpg.Connection, timeout: float) -> None:
    """One round trip to the server, bounded by `timeout` (asyncpg cancels the query cleanly)."""
    await conn.fetchval("SELECT 1", timeout=timeout)
