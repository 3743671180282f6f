"""Login sessions: rotating refresh tokens (one family per session), MFA challenges.

A refresh token is 256 random bits shown once; PostgreSQL keeps its SHA-256. Each use marks it used and
issues its successor in the same session. Presenting a token that was already used means it was copied:
the whole session (family) is revoked, the legitimate holder included, and the event is audited.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta
from typing import Any

import asyncpg

from cluster.audit import append_audit
from cluster.repositories import auth_sessions as repo
from cluster.settings import Settings
from domain.audit import now_utc
from gateway.auth.live_sessions import publish_session, revoke


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class InvalidRefresh(Exception):
    """Unknown, expired, revoked or replayed refresh token (the client only ever sees a plain 401)."""


async def create_session(conn: asyncpg.Connection, settings: Settings, user: Any, ip: str | None,
                         ua: str | None) -> tuple[str, str]:
    """Insert a session and its first refresh token (inside the caller's transaction)."""
    exp = now_utc() + timedelta(seconds=settings.refresh_token_ttl_s)
    sid = await repo.create(conn, user["id"], user["tenant_id"], exp, ip, (ua or "")[:200] or None)
    token = secrets.token_urlsafe(32)
    await repo.add_refresh_token(conn, sha256_hex(token), sid, exp)
    return str(sid), token


async def rotate(pool: asyncpg.Pool, redis, settings: Settings, token: str, ip: str | None,
                 ua: str | None) -> tuple[asyncpg.Record, str, str]:
    """Use a refresh token once: returns (user, session id, successor token) or raises InvalidRefresh."""
    h = sha256_hex(token)
    replayed: asyncpg.Record | None = None
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await repo.refresh_token_for_update(conn, h)
            now = now_utc()
            if row is None:
                raise InvalidRefresh()
            if row["used_at"] is not None:
                if row["revoked_at"] is None:
                    await repo.revoke_for_reuse(conn, row["sid"], now)
                    await append_audit(conn, row["tenant_id"], row["id"], "auth.refresh_reuse", "session",
                                       row["sid"], ip=ip, user_agent=ua,
                                       details={"outcome": "family_revoked"})
                replayed = row
            elif row["revoked_at"] is not None or row["deleted_at"] is not None or min(
                    row["expires_at"], row["s_exp"]) <= now:
                raise InvalidRefresh()
            else:
                successor = secrets.token_urlsafe(32)
                await repo.rotate_refresh_token(conn, h, sha256_hex(successor), row["sid"], row["s_exp"], now)
    if replayed is not None:
        await revoke(redis, settings, [str(replayed["sid"])])
        raise InvalidRefresh()
    # A role change or logout that committed after this rotation revoked the session: it stays ended.
    if not await publish_session(redis, settings, str(row["sid"]), row["id"], row["tenant_id"], row["role"]):
        raise InvalidRefresh()
    return row, str(row["sid"]), successor


async def revoke_sessions(conn: asyncpg.Connection, *, reason: str, session_id: Any = None,
                          user_id: Any = None, tenant_id: Any = None) -> list[str]:
    """Revoke one session, a user's sessions or a tenant's sessions (in the caller's transaction).
    Returns the revoked ids; the caller then calls `live_sessions.revoke` with them after commit."""
    return await repo.revoke(conn, reason=reason, session_id=session_id, user_id=user_id, tenant_id=tenant_id)


# --- MFA challenge between the two login steps (Redis, short-lived, bounded attempts) ---
MFA_MAX_ATTEMPTS = 5


def _challenge_key(settings: Settings, challenge: str) -> str:
    return f"{settings.redis_prefix}auth:mfa:{sha256_hex(challenge)}"


async def new_challenge(redis, settings: Settings, user_id: Any) -> str:
    challenge = secrets.token_urlsafe(32)
    await redis.set(_challenge_key(settings, challenge), json.dumps({"user_id": str(user_id), "attempts": 0}),
                    ex=settings.mfa_challenge_ttl_s)
    return challenge


async def challenge_user(redis, settings: Settings, challenge: str) -> str | None:
    raw = await redis.get(_challenge_key(settings, challenge))
    return json.loads(raw)["user_id"] if raw else None


async def challenge_failed(redis, settings: Settings, challenge: str) -> None:
    """Count a wrong code; the challenge dies after MFA_MAX_ATTEMPTS."""
    key = _challenge_key(settings, challenge)
    raw = await redis.get(key)
    if raw is None:
        return
    data = json.loads(raw)
    data["attempts"] += 1
    if data["attempts"] >= MFA_MAX_ATTEMPTS:
        await redis.delete(key)
    else:
        await redis.set(key, json.dumps(data), keepttl=True)


async def consume_challenge(redis, settings: Settings, challenge: str) -> bool:
    """Single use: True only for the caller that deleted it."""
    return bool(await redis.delete(_challenge_key(settings, challenge)))
