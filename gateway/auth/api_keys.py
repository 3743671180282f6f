"""API keys as credentials: `Authorization: Bearer gpb_...` becomes the same Claims a session token gives.

A key is looked up by its SHA-256: in Redis (`{prefix}auth:apikey:<hash>`, cached for CACHE_TTL_S), else
in PostgreSQL (`cluster.repositories.api_keys.usable`). Like a login session, a key has a live entry
`{prefix}auth:sess:key:<id>` = `user|tenant|role`; revocation replaces it with the tombstone `revoked`
(never overwritten) and announces the session id on `{prefix}auth:revoked`, which is how login sessions
end too, so the checks that watch sessions (HTTP, and the stream's periodic recheck and revocation
listener) treat a key exactly like a session whose id is `key:<id>`.
"""
from __future__ import annotations

import json
import time
from typing import Any, Awaitable, Callable

from cluster.repositories import api_keys as repo
from cluster.settings import Settings
from domain.api_keys import grantable, key_hash
from gateway.auth.tokens import Claims, TokenError

CACHE_TTL_S = 60  # a demoted user's keys narrow within this long (their role is re-read from PostgreSQL)
TOUCH_EVERY_S = 60  # last_used_at is written at most once a minute per key
REVOKED = "revoked"
_PUBLISH_LIVE = """
if redis.call('GET', KEYS[1]) == ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
return 1
"""


class InvalidApiKey(TokenError):
    """Unknown, revoked or expired API key, or one whose user may no longer hold its role."""


def session_id(key_id: Any) -> str:
    return f"key:{key_id}"


def _cache_key(settings: Settings, digest: str) -> str:
    return f"{settings.redis_prefix}auth:apikey:{digest}"


def _live_key(settings: Settings, sid: str) -> str:
    return f"{settings.redis_prefix}auth:sess:{sid}"


def _claims(info: dict[str, Any]) -> Claims:
    return Claims(sub=info["user_id"], role=info["role"], tenant_id=info["tenant_id"], jti=info["id"], kid="api_key",
                  exp=int(info["exp"] or 2 ** 31 - 1),
                  extra={"typ": "access", "sid": session_id(info["id"]), "kind": "api_key"})


async def cached_tenant(redis: Any, settings: Settings, token: str) -> str | None:
    """The tenant of a key already seen recently (for the rate limiter's hot path; None if not cached)."""
    raw = await redis.get(_cache_key(settings, key_hash(token)))
    return json.loads(raw)["tenant_id"] if raw else None


async def authenticate(redis: Any, get_pg: Callable[[], Awaitable[Any]], settings: Settings, token: str) -> Claims:
    """Claims of a working API key; raises InvalidApiKey. Redis and PostgreSQL errors propagate (503).

    `get_pg` returns the PostgreSQL pool (awaited only when the key is not cached). The Claims carry
    `sid = key:<id>` and `typ = access`, so a session check keyed by `sid` holds for keys as for logins."""
    digest = key_hash(token)
    raw = await redis.get(_cache_key(settings, digest))
    if raw is not None:
        info = json.loads(raw)
    else:
        row = await repo.usable(await get_pg(), digest)
        if row is None or not grantable(row["role"], row["user_role"]):
            raise InvalidApiKey("invalid, expired or revoked API key")
        exp = row["expires_at"].timestamp() if row["expires_at"] else None
        info = {"id": str(row["id"]), "user_id": str(row["user_id"]), "tenant_id": str(row["tenant_id"]),
                "role": row["role"], "exp": exp}
        live_ttl = int(exp - time.time()) + 1 if exp else settings.refresh_token_ttl_s
        if not await redis.eval(_PUBLISH_LIVE, 1, _live_key(settings, session_id(info["id"])),
                                f"{info['user_id']}|{info['tenant_id']}|{info['role']}", max(1, live_ttl), REVOKED):
            raise InvalidApiKey("invalid, expired or revoked API key")
        await redis.set(_cache_key(settings, digest), json.dumps(info), ex=max(1, min(CACHE_TTL_S, live_ttl)))
    if info["exp"] is not None and info["exp"] <= time.time():
        raise InvalidApiKey("invalid, expired or revoked API key")
    sid = session_id(info["id"])
    if await redis.get(_live_key(settings, sid)) in (None, REVOKED.encode()):
        raise InvalidApiKey("invalid, expired or revoked API key")
    if await redis.set(f"{settings.redis_prefix}auth:apikey:used:{info['id']}", b"1", nx=True, ex=TOUCH_EVERY_S):
        await repo.touch(await get_pg(), info["id"])
    return _claims(info)


async def revoked(redis: Any, settings: Settings, key_id: Any, digest: str) -> None:
    """End a key at once (after the commit that revoked it): tombstone, cache dropped, streams told."""
    sid = session_id(key_id)
    ttl = max(300, settings.access_token_ttl_s)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(_live_key(settings, sid), REVOKED, ex=ttl)
        pipe.delete(_cache_key(settings, digest))
        pipe.publish(f"{settings.redis_prefix}auth:revoked", json.dumps([sid]))
        await pipe.execute()
