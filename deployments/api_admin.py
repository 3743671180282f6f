"""`/admin/*`: tenants with plan limits, users and their roles, the audit trail and its verification.

Scope: a tenant's admin manages its own tenant and users; creating and deleting tenants and changing plan
limits (rate_limit_rps, burst, seats, ws_limit, plan) need a platform operator (an admin of a tenant with
`is_platform`). Another tenant's ids answer 404. Every change writes its audit entry in the SAME
transaction, on the chain of the tenant it changes.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from cluster.audit import append_audit, list_audit, verify_audit
from cluster.repositories import directory, tenant_accounts, user_accounts
from domain.api import (AuditPage, AuditVerification, RoleAssigned, TenantIn, TenantList, TenantOut, TenantPatch,
                        UserList, UserOut)
from domain.inputs import BIGINT_MAX, EMAIL_PATTERN, RequestModel
from gateway.auth.passwords import check_password, hash_password
from domain.models import Role
from domain.pagination import CURSOR_DESCRIPTION, CURSOR_PATTERN, CursorError, decode_cursor, encode_cursor
from domain.permissions import P
from gateway.auth import live_sessions, sessions
from gateway.auth.authz import Principal, client_ip, require, user_agent
from gateway.http.edge import ApiError

router = APIRouter(prefix="/admin", tags=["admin"])
PLAN_FIELDS = ("plan", "rate_limit_rps", "burst", "seats", "ws_limit")


class _In(RequestModel):
    pass


class UserIn(_In):
    email: str = Field(max_length=320, pattern=EMAIL_PATTERN)
    password: str = Field(min_length=1, max_length=256)
    role: Role = Role.user


class RoleIn(_In):
    role: Role


def _out(row: Any) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, UUID) else v) for k, v in dict(row).items()}


async def _pool(request: Request):
    return await request.app.state.runtime.get_pg()


async def _is_platform(conn, me: Principal) -> bool:
    return await tenant_accounts.is_platform(conn, me.tenant_id)


def _not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def _ctx(request: Request) -> dict[str, Any]:
    return {"ip": client_ip(request), "user_agent": user_agent(request)}


@router.get("/tenants", summary="Tenants visible to the caller (its own; every tenant for platform operators)",
            response_model=TenantList)
async def list_tenants(request: Request, limit: int = Query(100, ge=1, le=1000, description="items per page"),
                       cursor: str | None = Query(None, pattern=CURSOR_PATTERN, description=CURSOR_DESCRIPTION),
                       me: Principal = Depends(require(P.TENANT_READ))) -> dict:
    after = _position(cursor)
    async with (await _pool(request)).acquire() as conn:
        everyone = await _is_platform(conn, me)
        rows, total = await directory.list_tenants(conn, everyone, me.tenant_id, after, limit + 1)
    return _page(rows, total, limit)


def _position(cursor: str | None) -> tuple[datetime, UUID] | None:
    if cursor is None:
        return None
    try:
        pos = decode_cursor(cursor, ("t", "id"))
        return datetime.fromisoformat(pos["t"]), UUID(pos["id"])
    except (CursorError, TypeError, ValueError):
        raise ApiError(422, "validation_error", "invalid request: cursor", details=[
            {"field": "cursor", "message": "not a cursor issued by this route", "type": "value_error"}]) from None


def _page(rows: list, total: int, limit: int) -> dict[str, Any]:
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [_out(r) for r in rows], "total": total,
            "next_cursor": encode_cursor(directory.page_position(rows[-1])) if more else None}


@router.post("/tenants", status_code=201, summary="Create a tenant (platform operators)", response_model=TenantOut)
async def create_tenant(body: TenantIn, request: Request, me: Principal = Depends(require(P.TENANTS_MANAGE))) -> dict:
    async with (await _pool(request)).acquire() as conn, conn.transaction():
        if not await _is_platform(conn, me):
            raise ApiError(403, "forbidden", "only platform operators create tenants")
        row = await tenant_accounts.create(conn, body.name, body.plan.value, body.rate_limit_rps, body.burst,
                                           body.seats, body.ws_limit, body.currency)
        await append_audit(conn, row["id"], me.user_id, "tenant.created", "tenant", row["id"], **_ctx(request),
                           details={"by_tenant": str(me.tenant_id), **{k: row[k] for k in PLAN_FIELDS}})
    return _out(row)


async def _visible_tenant(conn, me: Principal, tenant_id: UUID, lock: bool = False) -> Any:
    if tenant_id != me.tenant_id and not await _is_platform(conn, me):
        raise _not_found("tenant")
    row = await tenant_accounts.get(conn, tenant_id, lock=lock)
    if row is None:
        raise _not_found("tenant")
    return row


@router.get("/tenants/{tenant_id}", summary="One tenant", response_model=TenantOut, responses={404: {"description": "no such tenant (or another tenant's)"}})
async def get_tenant(tenant_id: UUID, request: Request, me: Principal = Depends(require(P.TENANT_READ))) -> dict:
    async with (await _pool(request)).acquire() as conn:
        return _out(await _visible_tenant(conn, me, tenant_id))


@router.patch("/tenants/{tenant_id}", summary="Change a tenant (plan limits: platform operators)",
              response_model=TenantOut, responses={404: {"description": "no such tenant (or another tenant's)"}})
async def patch_tenant(tenant_id: UUID, body: TenantPatch, request: Request,
                       me: Principal = Depends(require(P.TENANT_WRITE))) -> dict:
    changes = body.model_dump(exclude_none=True, mode="json")
    if not changes:
        raise ApiError(422, "validation_error", "invalid request: body", details=[
            {"field": "body", "message": "no field to change", "type": "value_error"}])
    async with (await _pool(request)).acquire() as conn, conn.transaction():
        before = await _visible_tenant(conn, me, tenant_id, lock=True)
        if set(changes) & set(PLAN_FIELDS) and not await _is_platform(conn, me):
            raise ApiError(403, "forbidden", "only platform operators change plan limits")
        row = await tenant_accounts.update(conn, tenant_id, changes)
        diff = {k: {"from": before[k], "to": row[k]} for k in changes if before[k] != row[k]}
        await append_audit(conn, tenant_id, me.user_id, "tenant.updated", "tenant", tenant_id, **_ctx(request),
                           details={"changes": diff})
    return _out(row)


@router.delete("/tenants/{tenant_id}", status_code=204, summary="Delete a tenant (platform operators)",
               responses={**{404: {"description": "no such tenant (or another tenant's)"}}, 409: {"description": "a platform operator cannot delete its own tenant"}})
async def delete_tenant(tenant_id: UUID, request: Request,
                        me: Principal = Depends(require(P.TENANTS_MANAGE))) -> Response:
    rt = request.app.state.runtime
    async with (await _pool(request)).acquire() as conn, conn.transaction():
        await _visible_tenant(conn, me, tenant_id, lock=True)
        if not await _is_platform(conn, me):
            raise ApiError(403, "forbidden", "only platform operators delete tenants")
        if tenant_id == me.tenant_id:
            raise ApiError(409, "conflict", "a platform operator cannot delete its own tenant")
        await tenant_accounts.soft_delete(conn, tenant_id)
        revoked = await sessions.revoke_sessions(conn, reason="tenant_deleted", tenant_id=tenant_id)
        await append_audit(conn, tenant_id, me.user_id, "tenant.deleted", "tenant", tenant_id, **_ctx(request),
                           details={"sessions_revoked": len(revoked)})
    await live_sessions.revoke(rt.redis, rt.settings, revoked)
    return Response(status_code=204)


@router.get("/users", summary="The tenant's users", response_model=UserList)
async def list_users(request: Request, limit: int = Query(100, ge=1, le=1000, description="items per page"),
                     cursor: str | None = Query(None, pattern=CURSOR_PATTERN, description=CURSOR_DESCRIPTION),
                     me: Principal = Depends(require(P.USERS_READ))) -> dict:
    after = _position(cursor)
    async with (await _pool(request)).acquire() as conn:
        rows, total = await directory.list_users(conn, me.tenant_id, after, limit + 1)
    return _page(rows, total, limit)


@router.post("/users", status_code=201, summary="Add a user to the tenant (within its seats)", response_model=UserOut,
             responses={409: {"description": "seats exhausted, or this email cannot be registered"}})
async def create_user(body: UserIn, request: Request, me: Principal = Depends(require(P.USERS_MANAGE))) -> dict:
    s = request.app.state.settings
    check_password(s, body.password)
    pw_hash = await hash_password(s, body.password)
    async with (await _pool(request)).acquire() as conn, conn.transaction():
        seats = await tenant_accounts.lock_seats(conn, me.tenant_id)
        used = await user_accounts.count_members(conn, me.tenant_id)
        if used >= seats:
            raise ApiError(409, "seats_exhausted", f"all {seats} seats of the tenant are taken")
        if await user_accounts.email_taken(conn, body.email):
            raise ApiError(409, "conflict", "this email cannot be registered")
        row = await user_accounts.create(conn, me.tenant_id, body.email, pw_hash, body.role.value)
        await append_audit(conn, me.tenant_id, me.user_id, "user.created", "user", row["id"], **_ctx(request),
                           details={"role": body.role.value})
    return _out(row)


@router.put("/users/{user_id}/role", summary="Assign a role (the user's sessions end; it logs in again)",
            response_model=RoleAssigned, responses={404: {"description": "no such user in the tenant"},
                                                    409: {"description": "the tenant's last admin cannot lose the role"}})
async def set_role(user_id: UUID, body: RoleIn, request: Request,
                   me: Principal = Depends(require(P.USERS_MANAGE))) -> dict:
    rt = request.app.state.runtime
    async with (await _pool(request)).acquire() as conn, conn.transaction():
        await tenant_accounts.lock_for_member_change(conn, me.tenant_id)  # one role change at a time
        row = await user_accounts.lock_member(conn, me.tenant_id, user_id)
        if row is None:
            raise _not_found("user")
        if row["role"] == "admin" and body.role != Role.admin and await user_accounts.count_admins(
                conn, me.tenant_id) <= 1:
            raise ApiError(409, "conflict", "the tenant's last admin cannot lose the admin role")
        await user_accounts.set_role(conn, user_id, body.role.value)
        revoked = await sessions.revoke_sessions(conn, reason="role_changed", user_id=user_id)
        await append_audit(conn, me.tenant_id, me.user_id, "user.role_changed", "user", user_id, **_ctx(request),
                           details={"from": row["role"], "to": body.role.value})
    await live_sessions.revoke(rt.redis, rt.settings, revoked)
    return {"id": str(user_id), "role": body.role.value}


@router.get("/audit", summary="The tenant's audit trail, oldest first (keyset pages)", response_model=AuditPage)
async def audit_entries(request: Request, limit: int = Query(100, ge=1, le=1000, description="items per page"),
                        cursor: str | None = Query(None, pattern=CURSOR_PATTERN, description=CURSOR_DESCRIPTION),
                        after_id: int = Query(0, ge=0, le=BIGINT_MAX,
                                              description="the same position as an entry id (instead of cursor)"),
                        me: Principal = Depends(require(P.AUDIT_READ))) -> dict:
    if cursor is not None:
        try:
            after_id = decode_cursor(cursor, ("after_id",))["after_id"]
            if not isinstance(after_id, int) or not 0 <= after_id <= BIGINT_MAX:
                raise CursorError("not a cursor issued by this route")
        except CursorError as exc:
            raise ApiError(422, "validation_error", "invalid request: cursor", details=[
                {"field": "cursor", "message": str(exc), "type": "value_error"}]) from None
    async with (await _pool(request)).acquire() as conn:
        items = await list_audit(conn, me.tenant_id, after_id=after_id, limit=limit)
    last = items[-1]["id"] if len(items) == limit else None
    return {"items": items, "next_after_id": last,
            "next_cursor": encode_cursor({"after_id": last}) if last is not None else None}


@router.get("/audit/verify", summary="Verify the audit hash chain; reports the first broken link",
            response_model=AuditVerification)
async def audit_verify(request: Request, all_tenants: bool = Query(False, alias="all"),
                       me: Principal = Depends(require(P.AUDIT_VERIFY))) -> dict:
    pool = await _pool(request)
    if all_tenants:
        async with pool.acquire() as conn:
            if not await _is_platform(conn, me):
                raise ApiError(403, "forbidden", "only platform operators verify every tenant's chain")
    return await verify_audit(pool, me.tenant_id, all_tenants=all_tenants)
