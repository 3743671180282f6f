"""Users as login sees them: the row a new session is minted from, locked against a concurrent change.

Lock order shared by every transaction that touches a user's sessions: tenant row, user row, session
rows, then the audit chain head. Role changes and erasure lock the user row FOR UPDATE / NO KEY UPDATE;
a login locks it FOR SHARE, so the two run one after the other, never interleaved.
"""
from __future__ import annotations

from typing import Any

import asyncpg


async def lock_for_session(conn: asyncpg.Connection, user_id: Any) -> asyncpg.Record | None:
    """The user's current id, tenant and role, locked until the caller's transaction ends (it must run in
    one); None when the user or its tenant is deleted. A role change that committed first is seen here
    (a locking read returns the newest committed row); one that comes after waits for this transaction
    and then revokes the session it created."""
    return await conn.fetchrow(
        """SELECT u.id, u.tenant_id, u.role FROM users u JOIN tenants t ON t.id = u.tenant_id
           WHERE u.id = $1 AND u.deleted_at IS NULL AND t.deleted_at IS NULL
           FOR SHARE OF u FOR KEY SHARE OF t""", user_id)
