"""The transactional outbox: events written in the transaction of the change they announce, marked
published once NATS has acknowledged them, and read back by the relay when it had not.

A row holds one message (`payload`) or a batch of them (`body`, `messages`); its `msg_id` starts with the
producer's prefix, which is how each producer finds its own rows.
"""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

import asyncpg

from cluster.repositories import require_transaction

_UNPUBLISHED = """
SELECT id, subject, msg_id, payload::text AS payload, body, messages FROM outbox
WHERE published_at IS NULL AND msg_id LIKE $1 AND created_at <= now() - make_interval(secs => $2)
ORDER BY id LIMIT $3
"""

# Age of the oldest event still waiting (0 when none): the partial index on unpublished rows makes it an
# index probe.
_OLDEST_UNPUBLISHED_AGE = """
SELECT COALESCE(EXTRACT(EPOCH FROM now() - (SELECT created_at FROM outbox WHERE published_at IS NULL
                                           ORDER BY id LIMIT 1)), 0)::float8
"""


async def append_batches(conn: asyncpg.Connection, rows: Iterable[tuple]) -> None:
    """COPY (subject, msg_id, body, messages, created_at) batch rows, in the caller's transaction."""
    require_transaction(conn, "outbox.append_batches")
    await conn.copy_records_to_table("outbox", records=rows,
                                     columns=["subject", "msg_id", "body", "messages", "created_at"])


async def mark_published_at(pool: asyncpg.Pool, created_at: datetime, msg_prefix: str) -> None:
    """Mark published the producer's rows written at `created_at` (one ingest's batch rows)."""
    await pool.execute("UPDATE outbox SET published_at = now() "
                       "WHERE published_at IS NULL AND msg_id LIKE $2 AND created_at = $1",
                       created_at, msg_prefix + "%")


async def unpublished(pool: asyncpg.Pool, msg_prefix: str, older_than_s: float,
                      limit: int) -> list[asyncpg.Record]:
    """The producer's unpublished rows at least `older_than_s` old, oldest first."""
    return list(await pool.fetch(_UNPUBLISHED, msg_prefix + "%", older_than_s, limit))


async def mark_published(pool: asyncpg.Pool, ids: list[int]) -> None:
    await pool.execute("UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", ids)


async def oldest_unpublished_age_s(pool: asyncpg.Pool) -> float:
    return await pool.fetchval(_OLDEST_UNPUBLISHED_AGE)
