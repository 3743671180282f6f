"""Authentication and authorization for routes: `Depends(require(P.X))` returns the caller's Principal.

    from domain.permissions import P
    from gateway.authz import Principal, require

    @router.get("/bookings/{booking_id}")
    async def get_booking(booking_id: UUID, me: Principal = Depends(require(P.BOOKINGS_READ))):
        row = await pool.fetchrow("SELECT ... WHERE id = $1 AND tenant_id = $2", booking_id, me.tenant_id)
        if row is None: raise ApiError(404, "not_found", "booking not found")   # other tenants' ids: 404

A token is accepted only if its signature, `kid`, `exp`, `typ=access` are valid AND its session is live in
Redis with the same user, tenant and role (logout, a replayed refresh token, a role change or erasure end
the session at once, not when the token expires). Missing/invalid -> 401, permission missing -> 403.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable
from uuid import UUID

from fastapi import Request

from cluster.dependencies import DependencyUnavailable
from cluster.settings import Settings
from domain.api_keys import is_api_key
from domain.permissions import P, allowed
from gateway.http import ApiError
from gateway.tokens import Claims, TokenError, TokenService

_UNAUTH_HEADERS = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Principal:
    user_id: UUID
    tenant_id: UUID
    role: str
    session_id: str
    jti: str

    def can(self, permission: P) -> bool:
        return allowed(self.role, permission)


def token_service(state: Any) -> TokenService:
    """One TokenService per app (keys read once per process)."""
    ts = getattr(state, "token_service", None)
    if ts is None:
        s: Settings = state.settings
        ts = TokenService(s, access_ttl_s=s.access_token_ttl_s)
        state.token_service = ts
    return ts


def session_key(settings: Settings, session_id: str) -> str:
    return f"{settings.redis_prefix}auth:sess:{session_id}"


def session_value(user_id: Any, tenant_id: Any, role: str) -> str:
    return f"{user_id}|{tenant_id}|{role}"


def bearer_token(headers: Any) -> str | None:
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def unauthorized(message: str = "authentication required") -> ApiError:
    return ApiError(401, "unauthorized", message, headers=_UNAUTH_HEADERS)


def verify_access(state: Any, scope_state: dict | None, token: str) -> Claims:
    """Verify an access token (re-using the rate limiter's verification of this request when present)."""
    cached = (scope_state or {}).get("auth_claims")
    claims = cached if isinstance(cached, Claims) else token_service(state).verify(token)
    if claims.extra.get("typ") != "access" or not isinstance(claims.extra.get("sid"), str):
        raise TokenError("not an access token")
    UUID(claims.sub), UUID(claims.tenant_id)  # malformed ids are invalid tokens
    return claims


async def authenticate(request: Request) -> Principal:
    token = bearer_token(request.headers)
    if token is None:
        raise unauthorized()
    if is_api_key(token):
        return await _authenticate_api_key(request, token)
    try:
        claims = verify_access(request.app.state, request.scope.get("state"), token)
    except (TokenError, ValueError):
        raise unauthorized("invalid or expired token") from None
    settings: Settings = request.app.state.settings
    sid = claims.extra["sid"]
    try:
        live = await request.app.state.runtime.redis.get(session_key(settings, sid))
    except Exception as exc:  # answered 503 dependency_unavailable by the edge
        raise DependencyUnavailable("redis", f"session store: {exc}"[:200]) from exc
    if live is None or live.decode() != session_value(claims.sub, claims.tenant_id, claims.role):
        raise unauthorized("session ended; log in again")
    return Principal(UUID(claims.sub), UUID(claims.tenant_id), claims.role, sid, claims.jti)


async def _authenticate_api_key(request: Request, token: str) -> Principal:
    from gateway import api_keys

    try:
        rt = request.app.state.runtime
        claims = await api_keys.authenticate(rt.redis, rt.get_pg, request.app.state.settings, token)
    except TokenError:
        raise unauthorized("invalid, expired or revoked API key") from None
    except Exception:
        raise ApiError(503, "unavailable", "credential store unavailable") from None
    return Principal(UUID(claims.sub), UUID(claims.tenant_id), claims.role, claims.extra["sid"], claims.jti)


def require(permission: P) -> Callable:
    """FastAPI dependency: the authenticated Principal, if its role holds `permission` (else 403)."""

    async def dependency(request: Request) -> Principal:
        me = await authenticate(request)
        if not me.can(permission):
            raise ApiError(403, "forbidden", f"role {me.role} may not {permission.value}")
        return me

    dependency.__name__ = f"require_{permission.name.lower()}"
    return dependency


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def user_agent(request: Request) -> str | None:
    return request.headers.get("user-agent")
