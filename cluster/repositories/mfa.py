"""Second factors in PostgreSQL: a user's TOTP secret (sealed) with the last time step accepted, and the
SHA-256 of its single-use recovery codes. The crypto and the code rules are `gateway.auth.mfa`."""
from __future__ import annotations

from typing import Any

import asyncpg


async def store_secret(conn: asyncpg.Connection, user_id: Any, secret_enc: str) -> None:
    """A new, unconfirmed secret; it replaces the user's previous one and its step history."""
    await conn.execute(
        """INSERT INTO user_mfa (user_id, secret_enc) VALUES ($1, $2)
           ON CONFLICT (user_id) DO UPDATE SET secret_enc = EXCLUDED.secret_enc, confirmed_at = NULL,
                                               last_step = 0, created_at = now()""",
        user_id, secret_enc)


async def secret(conn: asyncpg.Connection, user_id: Any) -> asyncpg.Record | None:
    """(secret_enc, last_step) of the user's secret, or None when not enrolled."""
    return await conn.fetchrow("SELECT secret_enc, last_step FROM user_mfa WHERE user_id = $1", user_id)


async def burn_step(conn: asyncpg.Connection, user_id: Any, step: int) -> bool:
    """Record `step` as used; False when it (or a later one) was used already. One statement decides, so
    two requests with the same code cannot both pass."""
    burned = await conn.fetchval(
        "UPDATE user_mfa SET last_step = $2 WHERE user_id = $1 AND last_step < $2 RETURNING 1", user_id, step)
    return bool(burned)


async def replace_recovery_codes(conn: asyncpg.Connection, user_id: Any, code_hashes: list[str]) -> None:
    await conn.execute("DELETE FROM mfa_recovery_codes WHERE user_id = $1", user_id)
    await conn.executemany("INSERT INTO mfa_recovery_codes (user_id, code_hash) VALUES ($1, $2)",
                           [(user_id, h) for h in code_hashes])


async def use_recovery_code(conn: asyncpg.Connection, user_id: Any, code_hash: str) -> bool:
    """Mark an unused code used; False when unknown or used before."""
    used = await conn.fetchval(
        "UPDATE mfa_recovery_codes SET used_at = now() WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL "
        "RETURNING id", user_id, code_hash)
    return used is not None


async def remove(conn: asyncpg.Connection, user_id: Any) -> None:
    await conn.execute("DELETE FROM mfa_recovery_codes WHERE user_id = $1", user_id)
    await conn.execute("DELETE FROM user_mfa WHERE user_id = $1", user_id)
