"""Passwords at login and account creation: the policy from settings, hashing off the event loop, the
error a weak one answers, and a dummy hash so an unknown e-mail costs as much as a wrong password.

The rules themselves (length, argon2 parameters) are `domain.passwords.PasswordPolicy`.
"""
from __future__ import annotations

import asyncio
import secrets
from typing import Any

from cluster.settings import Settings
from domain.passwords import PasswordPolicy, WeakPassword
from gateway.http.edge import ApiError

EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$"


def policy(settings: Settings) -> PasswordPolicy:
    return PasswordPolicy(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib)


def check_password(settings: Settings, password: str, field: str = "password") -> None:
    """422 `validation_error` naming `field` when the password breaks the policy."""
    try:
        policy(settings).check(password)
    except WeakPassword as exc:
        raise ApiError(422, "validation_error", f"invalid request: {field}",
                       details=[{"field": field, "message": str(exc), "type": "weak_password"}]) from None


async def hash_password(settings: Settings, password: str) -> str:
    return await asyncio.to_thread(policy(settings).hash, password)


async def verify_password(settings: Settings, stored_hash: str, password: str) -> bool:
    return await asyncio.to_thread(policy(settings).verify, stored_hash, password)


def dummy_hash(state: Any) -> str:
    """A hash to verify against when the account does not exist (one per app, made on first use)."""
    h = getattr(state, "dummy_password_hash", None)
    if h is None:
        h = state.dummy_password_hash = policy(state.settings).hash(secrets.token_urlsafe(16))
    return h
