"""Passwords as the account routes take them (sign-up, users an admin adds): the policy check answering
the API's 422, and argon2 hashing off the event loop (it is memory-hard on purpose)."""
from __future__ import annotations

import asyncio

from cluster.settings import Settings
from domain.passwords import WeakPassword, policy_for
from gateway.http.edge import ApiError


def check_password(settings: Settings, password: str, field: str = "password") -> None:
    try:
        policy_for(settings).check(password)
    except WeakPassword as exc:
        raise ApiError(422, "validation_error", f"invalid request: {field}",
                       details=[{"field": field, "message": str(exc), "type": "weak_password"}]) from None


async def hash_password(settings: Settings, password: str) -> str:
    return await asyncio.to_thread(policy_for(settings).hash, password)
