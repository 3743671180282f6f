"""Tenants and users: as listed by the admin routes (keyset pages on (created_at, id), oldest first), and a
tenant's plan limits as the edge enforces them (the HTTP rate limiter, the stream's connection limit)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Awaitable, Protocol
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


@dataclass(frozen=True)
class TenantPlan:
    """The limits of a live tenant's plan that the edge enforces."""
    rate_limit_rps: float
    burst: int
    ws_limit: int


class PlanLookup(Protocol):
    """How the edge's limiters find a tenant's plan (`tenant_plan` on a pool, or a benchmark's table)."""

    def __call__(self, tenant_id: str) -> Awaitable[TenantPlan | None]: ...


async def tenant_plan(db: asyncpg.Pool | asyncpg.Connection, tenant_id: UUID | str) -> TenantPlan | None:
    """The plan limits of a tenant that exists and is not deleted; None otherwise (a malformed id too)."""
    try:
        tid = tenant_id if isinstance(tenant_id, UUID) else UUID(str(tenant_id))
    except ValueError:
        return None
    row = await db.fetchrow("SELECT rate_limit_rps, burst, ws_limit FROM tenants WHERE id = $1 AND deleted_at IS NULL",
                            tid)
    if row is None:
        return None
    return TenantPlan(float(row["rate_limit_rps"]), int(row["burst"]), int(row["ws_limit"]))
