"""TOTP (RFC 6238, pyotp) and recovery codes.

A code is accepted for the current 30 s step or one step either side, and only if that step is later
than the last one accepted for the user (`cluster.repositories.mfa.burn_step` decides atomically), so a
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

from cluster.repositories import mfa as repo
from gateway.auth.secretbox import SecretBox

ISSUER = "GPU Broker"
RECOVERY_CODES = 10


def _aad(user_id: Any) -> str:
    return f"totp:{user_id}"


async def enroll(conn: asyncpg.Connection, box: SecretBox, user_id: Any, account_name: str) -> tuple[str, str]:
    """Store a new (unconfirmed) secret, replacing an unconfirmed one. Returns (secret, provisioning URI)."""
    secret = pyotp.random_base32()
    await repo.store_secret(conn, user_id, box.seal(secret, _aad(user_id)))
    return secret, pyotp.TOTP(secret).provisioning_uri(name=account_name, issuer_name=ISSUER)


async def verify_code(conn: asyncpg.Connection, box: SecretBox, user_id: Any, code: str,
                      now: float | None = None) -> bool:
    """Check a 6-digit code and burn its time step. False when wrong, replayed or not enrolled."""
    row = await repo.secret(conn, user_id)
    if row is None:
        return False
    totp = pyotp.TOTP(box.open(row["secret_enc"], _aad(user_id)))
    step_now = int((now if now is not None else time.time()) // totp.interval)
    for step in (step_now - 1, step_now, step_now + 1):
        if step > row["last_step"] and hmac.compare_digest(totp.generate_otp(step), code):
            return await repo.burn_step(conn, user_id, step)
    return False


def _code_hash(user_id: Any, code: str) -> str:
    return hashlib.sha256(f"{user_id}:{code.replace('-', '').lower()}".encode()).hexdigest()


async def new_recovery_codes(conn: asyncpg.Connection, user_id: Any) -> list[str]:
    """Replace the user's recovery codes; the plain codes are returned once and never stored."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(10)
        codes.append(f"{raw[:5]}-{raw[5:10]}-{raw[10:15]}-{raw[15:]}")
    await repo.replace_recovery_codes(conn, user_id, [_code_hash(user_id, c) for c in codes])
    return codes


async def use_recovery_code(conn: asyncpg.Connection, user_id: Any, code: str) -> bool:
    return await repo.use_recovery_code(conn, user_id, _code_hash(user_id, code))


async def remove(conn: asyncpg.Connection, user_id: Any) -> None:
    await repo.remove(conn, user_id)
