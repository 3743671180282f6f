"""The personal data of one user as a data subject request reads it (export) and the parts erasure
clears that no other aggregate owns. Run both in the caller's transaction: the export in one REPEATABLE
READ snapshot, the erasure together with its audit entry."""
from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from cluster.repositories import require_transaction


async def export_rows(conn: asyncpg.Connection, user_id: UUID, tenant_id: UUID,
                      with_invoices: bool) -> dict[str, Any]:
    """{profile, sessions, mfa, bookings, invoices} of the user (invoices: the tenant's, when asked)."""
    require_transaction(conn, "gdpr.export_rows")
    profile = await conn.fetchrow("SELECT id, tenant_id, email, role, mfa_enabled, created_at, updated_at "
                                  "FROM users WHERE id = $1", user_id)
    sessions = await conn.fetch("SELECT id, created_at, last_used_at, expires_at, revoked_at, revoke_reason, ip, "
                                "user_agent FROM auth_sessions WHERE user_id = $1 ORDER BY created_at", user_id)
    mfa = await conn.fetchrow(
        "SELECT confirmed_at, created_at, (SELECT count(*) FROM mfa_recovery_codes c WHERE c.user_id = m.user_id "
        "AND c.used_at IS NULL) AS recovery_codes_left FROM user_mfa m WHERE user_id = $1", user_id)
    bookings = await conn.fetch("SELECT * FROM bookings WHERE user_id = $1 AND tenant_id = $2 "
                                "ORDER BY created_at", user_id, tenant_id)
    invoices = []
    if with_invoices:
        invoices = await conn.fetch("SELECT * FROM invoices WHERE tenant_id = $1 ORDER BY period_start", tenant_id)
    return {"profile": profile, "sessions": sessions, "mfa": mfa, "bookings": bookings, "invoices": invoices}


async def clear_session_origins(conn: asyncpg.Connection, user_id: UUID) -> None:
    """Forget where the user's sessions came from (ip, user agent)."""
    await conn.execute("UPDATE auth_sessions SET ip = NULL, user_agent = NULL WHERE user_id = $1", user_id)
