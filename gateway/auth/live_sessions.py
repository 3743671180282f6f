"""Live login sessions: their state in Redis, and THE check every access token passes (HTTP and stream).

`authenticate_token` is the one point where a bearer token becomes trusted: the HTTP routes
(`gateway.auth.authz.authenticate`) and the WebSocket gateway (connect, subscribe, re-auth, the periodic
recheck) all call it, and nothing else decides whether a session still holds. A token passes when its
signature, `kid`, `exp`, `typ=access` and ids are valid AND its session is live in Redis with the same
user, tenant and role.

Redis key `{prefix}auth:sess:<sid>` holds `user|tenant|role` while the session lives and `revoked` for a
while after it ends. Revocation is sticky: `publish_session` never overwrites `revoked` (compare-and-set
in Lua), so a login or refresh racing a role change, logout or erasure cannot bring its session back after
the revoking transaction ended it. Every revocation is also announced on the pub/sub channel
`{prefix}auth:revoked` (a JSON list of session ids), which open streams listen to.
"""
from __future__ import annotations

import json
from typing import Any, Awaitable, Callable, Iterable
from uuid import UUID

from cluster.settings import Settings
from domain.api_keys import is_api_key
from gateway.auth import api_keys
from gateway.auth.tokens import Claims, TokenError, TokenService

REVOKED = "revoked"
# Keep the tombstone well past the moment a racing publish could still arrive (right after its commit).
_TOMBSTONE_MIN_S = 300
_PUBLISH = """
if redis.call('GET', KEYS[1]) == ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
return 1
"""


class SessionEnded(TokenError):
    """The token is well-formed and signed, but its session was ended (logout, erasure, role change,
    refresh-token replay, tenant deleted) or no longer matches the user's role."""


def session_key(settings: Settings, session_id: str) -> str:
    return f"{settings.redis_prefix}auth:sess:{session_id}"


def session_value(user_id: Any, tenant_id: Any, role: str) -> str:
    return f"{user_id}|{tenant_id}|{role}"


def revocation_channel(settings: Settings) -> str:
    return f"{settings.redis_prefix}auth:revoked"


def access_claims(tokens: TokenService, token: str, verified: Claims | None = None) -> Claims:
    """Signature, expiry, `typ=access`, a session id and well-formed ids (TokenError otherwise).
    `verified`: the same token's claims already verified earlier in this request (the rate limiter)."""
    claims = verified if isinstance(verified, Claims) else tokens.verify(token)
    if claims.extra.get("typ") != "access" or not isinstance(claims.extra.get("sid"), str):
        raise TokenError("not an access token")
    try:
        UUID(claims.sub), UUID(claims.tenant_id)
    except ValueError:
        raise TokenError("malformed ids") from None
    return claims


def _is_live(stored: bytes | None, claims: Claims) -> bool:
    return stored is not None and stored.decode() == session_value(claims.sub, claims.tenant_id, claims.role)


async def check_session(redis: Any, settings: Settings, claims: Claims) -> None:
    """Raise SessionEnded unless the claims' session is live with the same user, tenant and role.
    Redis errors propagate (the caller answers 503 / 1013)."""
    if not _is_live(await redis.get(session_key(settings, claims.extra["sid"])), claims):
        raise SessionEnded("session ended; log in again")


async def ended_sessions(redis: Any, settings: Settings, claims: Iterable[Claims]) -> set[str]:
    """`check_session` for many tokens in one round trip: the session ids among them that no longer hold."""
    todo = list({c.extra["sid"]: c for c in claims}.values())
    if not todo:
        return set()
    async with redis.pipeline(transaction=False) as pipe:
        for c in todo:
            pipe.get(session_key(settings, c.extra["sid"]))
        stored = await pipe.execute()
    return {c.extra["sid"] for c, v in zip(todo, stored) if not _is_live(v, c)}


async def authenticate_token(tokens: TokenService, redis: Any, settings: Settings, token: str,
                             verified: Claims | None = None, *,
                             get_pg: Callable[[], Awaitable[Any]] | None = None) -> Claims:
    """THE check of a bearer credential, shared by every HTTP route and the WebSocket stream.

    An access token: valid (`access_claims`) and its session live with the token's role (`check_session`).
    An API key (`gpb_...`, when `get_pg` gives the PostgreSQL pool): `gateway.auth.api_keys.authenticate`,
    whose Claims carry `sid = key:<id>` with a live entry under the same key scheme, so the session
    watchers treat it alike. Raises TokenError (SessionEnded for an ended session); Redis and PostgreSQL
    errors propagate. New credential kinds belong here, so that HTTP and the stream keep deciding alike."""
    if get_pg is not None and is_api_key(token):
        return await api_keys.authenticate(redis, get_pg, settings, token)
    claims = access_claims(tokens, token, verified)
    await check_session(redis, settings, claims)
    return claims


async def publish_session(redis: Any, settings: Settings, sid: str, user_id: Any, tenant_id: Any,
                          role: str) -> bool:
    """Make a session live (after the commit that created or rotated it). False when it was revoked in
    the meantime: the caller must not hand out its tokens."""
    ok = await redis.eval(_PUBLISH, 1, session_key(settings, sid), session_value(user_id, tenant_id, role),
                          settings.refresh_token_ttl_s, REVOKED)
    return bool(ok)


async def revoke(redis: Any, settings: Settings, session_ids: Iterable[str]) -> None:
    """End sessions at once (after the commit that revoked them in PostgreSQL) and tell open streams."""
    ids = sorted({str(s) for s in session_ids})
    if not ids:
        return
    ttl = max(_TOMBSTONE_MIN_S, settings.access_token_ttl_s)
    async with redis.pipeline(transaction=False) as pipe:
        for sid in ids:
            pipe.set(session_key(settings, sid), REVOKED, ex=ttl)
        pipe.publish(revocation_channel(settings), json.dumps(ids))
        await pipe.execute()
