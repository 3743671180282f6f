"""TOTP (RFC 6238, pyotp) and recovery codes.

A code is accepted for the current 30 s step or one step either side, and only if that step is later
than the last one accepted for the user (an UPDATE ... WHERE last_step < step decides atomically), so a
code cannot be used twice. Recovery codes are 80-bit random strings stored as SHA-256, each single use.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

import asyncpg
import pyotp

from gateway.auth.secretbox import SecretBox

ISSUER = "GPU Broker"
RECOVERY_CODES = 10


def _aad(user_id: Any) -> str:
    return f"totp:{user_id}"


async def enroll(conn: asyncpg.Connection, box: SecretBox, user_id: Any, account_name: str) -> tuple[str, str]:
    """Store a new (unconfirmed) secret, replacing an unconfirmed one. Returns (secret, provisioning URI)."""
    secret = pyotp.random_base32()
    await conn.execute(
        """INSERT INTO user_mfa (user_id, secret_enc) VALUES ($1, $2)
           ON CONFLICT (user_id) DO UPDATE SET secret_enc = EXCLUDED.secret_enc, confirmed_at = NULL,
                                               last_step = 0, created_at = now()""",
        user_id, box.seal(secret, _aad(user_id)))
    return secret, pyotp.TOTP(secret).provisioning_uri(name=account_name, issuer_name=ISSUER)


async def verify_code(conn: asyncpg.Connection, box: SecretBox, user_id: Any, code: str,
                      now: float | None = None) -> bool:
    """Check a 6-digit code and burn its time step. False when wrong, replayed or not enrolled."""
    row = await conn.fetchrow("SELECT secret_enc, last_step FROM user_mfa WHERE user_id = $1", user_id)
    if row is None:
        return False
    totp = pyotp.TOTP(box.open(row["secret_enc"], _aad(user_id)))
    step_now = int((now if now is not None else time.time()) // totp.interval)
    for step in (step_now - 1, step_now, step_now + 1):
        if step > row["last_step"] and hmac.compare_digest(totp.generate_otp(step), code):
            burned = await conn.fetchval(
                "UPDATE user_mfa SET last_step = $2 WHERE user_id = $1 AND last_step < $2 RETURNING 1", user_id, step)
            return bool(burned)
    return False


def _code_hash(user_id: Any, code: str) -> str:
    return hashlib.sha256(f"{user_id}:{code.replace('-', '').lower()}".encode()).hexdigest()


async def new_recovery_codes(conn: asyncpg.Connection, user_id: Any) -> list[str]:
    """Replace the user's recovery codes; the plain codes are returned once and never stored."""
    await conn.execute("DELETE FROM mfa_recovery_codes WHERE user_id = $1", user_id)
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(10)
        codes.append(f"{raw[:5]}-{raw[5:10]}-{raw[10:15]}-{raw[15:]}")
    await conn.executemany("INSERT INTO mfa_recovery_codes (user_id, code_hash) VALUES ($1, $2)",
                           [(user_id, _code_hash(user_id, c)) for c in codes])
    return codes


async def use_recovery_code(conn: asyncpg.Connection, user_id: Any, code: str) -> bool:
    used = await conn.fetchval(
        "UPDATE mfa_recovery_codes SET used_at = now() WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL "
        "RETURNING id", user_id, _code_hash(user_id, code))
    return used is not None


async def remove(conn: asyncpg.Connection, user_id: Any) -> None:
    await conn.execute("DELETE FROM mfa_recovery_codes WHERE user_id = $1", user_id)
    await conn.execute("DELETE FROM user_mfa WHERE user_id = $1", user_id)
