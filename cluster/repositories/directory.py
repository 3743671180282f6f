"""Tenants and users as listed by the admin routes: keyset pages on (created_at, id), oldest first."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

TENANT_COLUMNS = "id, name, plan, rate_limit_rps, burst, seats, ws_limit, currency, is_platform, created_at, updated_at"
USER_COLUMNS = "id, tenant_id, email, role, mfa_enabled, created_at"
Position = tuple[datetime, UUID] | None


async def list_tenants(conn: asyncpg.Connection, everyone: bool, tenant_id: UUID, after: Position,
                       limit: int) -> tuple[list[asyncpg.Record], int]:
    """(one page of the tenants the caller sees, how many it sees in all)."""
    where = "deleted_at IS NULL AND ($1 OR id = $2)"
    rows = await conn.fetch(
        f"SELECT {TENANT_COLUMNS} FROM tenants WHERE {where} AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4)) "
        "ORDER BY created_at, id LIMIT $5", everyone, tenant_id, after and after[0], after and after[1], limit)
    total = await conn.fetchval(f"SELECT count(*) FROM tenants WHERE {where}", everyone, tenant_id)
    return list(rows), int(total)


async def list_users(conn: asyncpg.Connection, tenant_id: UUID, after: Position,
                     limit: int) -> tuple[list[asyncpg.Record], int]:
    """(one page of the tenant's users, how many it has)."""
    rows = await conn.fetch(
        f"SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND deleted_at IS NULL "
        "AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) ORDER BY created_at, id LIMIT $4",
        tenant_id, after and after[0], after and after[1], limit)
    total = await conn.fetchval("SELECT count(*) FROM users WHERE tenant_id = $1 AND deleted_at IS NULL", tenant_id)
    return list(rows), int(total)


def page_position(row: Any) -> dict[str, Any]:
    return {"t": row["created_at"].isoformat(), "id": str(row["id"])}
