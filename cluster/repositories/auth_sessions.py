"""Login sessions and their refresh tokens in PostgreSQL (tables `auth_sessions`, `refresh_tokens`).

A refresh token is stored as its SHA-256 only. The rotation rules (one use, replay revokes the family)
are `gateway.auth.sessions`; this module only reads and writes the rows.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from cluster.repositories import require_transaction


async def create(conn: asyncpg.Connection, user_id: Any, tenant_id: Any, expires_at: datetime, ip: str | None,
                 user_agent: str | None) -> Any:
    """A new session; returns its id."""
    return await conn.fetchval(
        "INSERT INTO auth_sessions (user_id, tenant_id, expires_at, ip, user_agent) VALUES ($1, $2, $3, $4, $5) "
        "RETURNING id", user_id, tenant_id, expires_at, ip, user_agent)


async def add_refresh_token(conn: asyncpg.Connection, token_hash: str, session_id: Any, expires_at: datetime) -> None:
    await conn.execute("INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
                       token_hash, session_id, expires_at)


async def refresh_token_for_update(conn: asyncpg.Connection, token_hash: str) -> asyncpg.Record | None:
    """The token with its session and user, token and session rows locked until the caller's transaction
    ends: used_at, expires_at, sid, revoked_at, s_exp (session expiry), id, tenant_id, role, deleted_at."""
    require_transaction(conn, "refresh_token_for_update")
    return await conn.fetchrow(
        """SELECT t.used_at, t.expires_at, s.id AS sid, s.revoked_at, s.expires_at AS s_exp,
                  u.id, u.tenant_id, u.role, u.deleted_at
           FROM refresh_tokens t JOIN auth_sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id
           WHERE t.token_hash = $1 FOR UPDATE OF t, s""", token_hash)


async def revoke_for_reuse(conn: asyncpg.Connection, session_id: Any, now: datetime) -> None:
    """End a session whose refresh token was presented a second time."""
    await conn.execute("UPDATE auth_sessions SET revoked_at = $2, revoke_reason = 'refresh_reuse' WHERE id = $1",
                       session_id, now)


async def rotate_refresh_token(conn: asyncpg.Connection, used_hash: str, successor_hash: str, session_id: Any,
                               expires_at: datetime, now: datetime) -> None:
    """Mark a token used, store its successor in the same session and note the session's use."""
    require_transaction(conn, "rotate_refresh_token")
    await conn.execute("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1", used_hash, now)
    await add_refresh_token(conn, successor_hash, session_id, expires_at)
    await conn.execute("UPDATE auth_sessions SET last_used_at = $2 WHERE id = $1", session_id, now)


async def revoke(conn: asyncpg.Connection, *, reason: str, session_id: Any = None, user_id: Any = None,
                 tenant_id: Any = None) -> list[str]:
    """Revoke one session, a user's sessions or a tenant's sessions that are still open; their ids."""
    rows = await conn.fetch(
        """UPDATE auth_sessions SET revoked_at = now(), revoke_reason = $4
           WHERE revoked_at IS NULL AND (id = $1::uuid OR user_id = $2::uuid OR tenant_id = $3::uuid) RETURNING id""",
        session_id, user_id, tenant_id, reason)
    return [str(r["id"]) for r in rows]
