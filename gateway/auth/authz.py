"""Authentication and authorization for routes: `Depends(require(P.X))` returns the caller's Principal.

    from cluster.repositories import bookings as bookings_repo
    from domain.permissions import P
    from gateway.auth.authz import Principal, require

    @router.get("/bookings/{booking_id}")
    async def get_booking(booking_id: UUID, me: Principal = Depends(require(P.BOOKINGS_READ))):
        row = await bookings_repo.get(pool, booking_id, me.tenant_id)  # storage: cluster.repositories
        if row is None: raise ApiError(404, "not_found", "booking not found")   # other tenants' ids: 404

A token is accepted only by `gateway.auth.live_sessions.authenticate_token`, the check the WebSocket stream
shares: signature, `kid`, `exp`, `typ=access` valid AND its session live in Redis with the same user,
tenant and role (logout, a replayed refresh token, a role change or erasure end the session at once, not
when the token expires). Missing/invalid -> 401, permission missing -> 403.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable
from uuid import UUID

from fastapi import Request

from cluster.dependencies import DependencyUnavailable, dependency_down
from cluster.settings import Settings
from domain.api_keys import is_api_key
from domain.permissions import P, allowed
from gateway.auth.live_sessions import SessionEnded, authenticate_token
from gateway.auth.tokens import TokenError, TokenService
from gateway.http.client_address import scope_client
from gateway.http.edge import ApiError

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


def bearer_token(headers: Any) -> str | None:
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def unauthorized(message: str = "authentication required") -> ApiError:
    return ApiError(401, "unauthorized", message, headers=_UNAUTH_HEADERS)


async def authenticate(request: Request) -> Principal:
    token = bearer_token(request.headers)
    if token is None:
        raise unauthorized()
    settings: Settings = request.app.state.settings
    verified = (request.scope.get("state") or {}).get("auth_claims")  # the rate limiter verified it already
    rt = request.app.state.runtime
    try:
        claims = await authenticate_token(token_service(request.app.state), rt.redis, settings, token, verified,
                                          get_pg=rt.get_pg)
    except SessionEnded as exc:
        raise unauthorized(str(exc)) from None
    except TokenError:
        raise unauthorized("invalid, expired or revoked API key" if is_api_key(token)
                           else "invalid or expired token") from None
    except Exception as exc:
        dep = dependency_down(exc)
        if dep is None:
            raise  # a bug, not an outage: logged once as a 500 by the edge
        raise DependencyUnavailable(dep, f"session store: {exc}"[:200]) from exc
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
    """The real client address (X-Forwarded-For from trusted proxies; see `gateway.http.client_address`)."""
    return scope_client(request.scope, request.app.state.settings.trusted_proxies)


def user_agent(request: Request) -> str | None:
    return request.headers.get("user-agent")
