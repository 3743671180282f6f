"""Tenants as records: created, read, changed and deleted by the admin routes, sign-up and the operator
CLI. Plan limits are columns of the tenant row; a platform tenant (`is_platform`) holds the operators.
Locking reads (`lock=True`, `lock_for_member_change`) must run in the caller's transaction."""
from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from cluster.repositories import require_transaction

COLUMNS = "id, name, plan, rate_limit_rps, burst, seats, ws_limit, currency, is_platform, created_at, updated_at"
# columns a PATCH may change; the names go into SQL, so only these are accepted
CHANGEABLE = frozenset({"name", "plan", "rate_limit_rps", "burst", "seats", "ws_limit", "currency"})


async def is_platform(conn: asyncpg.Connection, tenant_id: UUID) -> bool:
    return bool(await conn.fetchval("SELECT is_platform FROM tenants WHERE id = $1 AND deleted_at IS NULL",
                                    tenant_id))


async def create(conn: asyncpg.Connection, name: str, plan: str, rate_limit_rps: float, burst: int, seats: int,
                 ws_limit: int, currency: str) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO tenants (name, plan, rate_limit_rps, burst, seats, ws_limit, currency) "
        f"VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}",
        name, plan, rate_limit_rps, burst, seats, ws_limit, currency)


async def create_signed_up(conn: asyncpg.Connection, name: str) -> asyncpg.Record:
    """A tenant with the default plan, as self-service sign-up creates it (every column)."""
    return await conn.fetchrow("INSERT INTO tenants (name) VALUES ($1) RETURNING *", name)


async def get(conn: asyncpg.Connection, tenant_id: UUID, lock: bool = False) -> asyncpg.Record | None:
    """The live (not deleted) tenant; `lock` holds it FOR UPDATE until the transaction ends."""
    if lock:
        require_transaction(conn, "tenant_accounts.get(lock=True)")
    return await conn.fetchrow(f"SELECT {COLUMNS} FROM tenants WHERE id = $1 AND deleted_at IS NULL"
                               + (" FOR UPDATE" if lock else ""), tenant_id)


async def update(conn: asyncpg.Connection, tenant_id: UUID, changes: dict[str, Any]) -> asyncpg.Record:
    unknown = set(changes) - CHANGEABLE
    if unknown or not changes:
        raise ValueError(f"not changeable tenant columns: {sorted(unknown) or 'none given'}")
    sets = ", ".join(f"{k} = ${i + 2}" for i, k in enumerate(changes))
    return await conn.fetchrow(f"UPDATE tenants SET {sets}, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}",
                               tenant_id, *changes.values())


async def soft_delete(conn: asyncpg.Connection, tenant_id: UUID) -> None:
    await conn.execute("UPDATE tenants SET deleted_at = now(), updated_at = now() WHERE id = $1", tenant_id)


async def lock_seats(conn: asyncpg.Connection, tenant_id: UUID) -> int:
    """The tenant's seats, its row locked until the transaction ends (one user creation at a time)."""
    require_transaction(conn, "lock_seats")
    return await conn.fetchval("SELECT seats FROM tenants WHERE id = $1 FOR UPDATE", tenant_id)


async def lock_for_member_change(conn: asyncpg.Connection, tenant_id: UUID) -> None:
    """One role change at a time per tenant (the last-admin rule). NO KEY UPDATE: a login's foreign-key
    check (KEY SHARE) on the tenant row must not wait here while it holds the user row (a deadlock)."""
    require_transaction(conn, "lock_for_member_change")
    await conn.execute("SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE", tenant_id)


async def lock_platform(conn: asyncpg.Connection) -> asyncpg.Record | None:
    """The oldest live platform tenant (id), locked; None when there is none yet."""
    require_transaction(conn, "lock_platform")
    return await conn.fetchrow(
        "SELECT id FROM tenants WHERE is_platform AND deleted_at IS NULL ORDER BY created_at LIMIT 1 FOR UPDATE")


async def create_platform(conn: asyncpg.Connection, name: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO tenants (name, plan, is_platform) VALUES ($1, 'enterprise', true) RETURNING id", name)
