"""API keys in PostgreSQL: create, list (keyset pages), find a usable key by hash, touch, revoke."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

COLUMNS = "id, name, role, prefix, created_at, expires_at, last_used_at"


async def create(conn: asyncpg.Connection, tenant_id: UUID, user_id: UUID, name: str, role: str, key_hash: str,
                 prefix: str, expires_at: datetime | None) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO api_keys (tenant_id, user_id, name, role, key_hash, prefix, expires_at) "
        f"VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}",
        tenant_id, user_id, name, role, key_hash, prefix, expires_at)


async def list_for_user(pool: asyncpg.Pool, user_id: UUID, after: tuple[datetime, UUID] | None,
                        limit: int) -> list[asyncpg.Record]:
    """The user's keys that still work (not revoked, not expired), oldest first."""
    return list(await pool.fetch(
        f"SELECT {COLUMNS} FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL "
        "AND (expires_at IS NULL OR expires_at > now()) "
        "AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) ORDER BY created_at, id LIMIT $4",
        user_id, after and after[0], after and after[1], limit))


async def usable(pool: asyncpg.Pool, key_hash: str) -> dict[str, Any] | None:
    """The key with this hash if it works now: not revoked or expired, its user and tenant not deleted."""
    row = await pool.fetchrow(
        "SELECT k.id, k.user_id, k.tenant_id, k.role, k.expires_at, u.role AS user_role FROM api_keys k "
        "JOIN users u ON u.id = k.user_id JOIN tenants t ON t.id = k.tenant_id "
        "WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now()) "
        "AND u.deleted_at IS NULL AND t.deleted_at IS NULL", key_hash)
    return dict(row) if row else None


async def touch(pool: asyncpg.Pool, key_id: str) -> None:
    await pool.execute("UPDATE api_keys SET last_used_at = now() WHERE id = $1::uuid", key_id)


async def revoke(conn: asyncpg.Connection, key_id: UUID, user_id: UUID) -> asyncpg.Record | None:
    """Revoke one of the user's working keys (inside the caller's transaction); None if there is none."""
    return await conn.fetchrow(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL "
        "RETURNING id, key_hash, name", key_id, user_id)
