"""`/auth/api-keys`: create, list and revoke the caller's API keys (for scripts, the SDK and the CLI).

The key is answered once at creation and stored only as its SHA-256. A key's role is no wider than its
creator's; a key cannot create keys (a script's key never outlives or outranks the login that made it).
Creation and revocation are audited; revocation takes effect at once on HTTP, and on the stream through
the session revocation event (`gateway.auth.api_keys.revoked`).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from cluster.audit import append_audit
from cluster.repositories import api_keys as repo
from domain.api_keys import ApiKeyCreated, ApiKeyIn, ApiKeyList, display_prefix, grantable, key_hash, new_key
from domain.pagination import CURSOR_DESCRIPTION, CURSOR_PATTERN, CursorError, decode_cursor, encode_cursor
from domain.permissions import P
from gateway.auth import api_keys
from gateway.auth.authz import Principal, client_ip, require, user_agent
from gateway.http.edge import ApiError

router = APIRouter(prefix="/auth", tags=["auth"])


def _out(row: Any) -> dict[str, Any]:
    return {**dict(row), "id": str(row["id"])}


@router.post("/api-keys", status_code=201, response_model=ApiKeyCreated,
             summary="Create an API key (shown once) with a role no wider than the caller's",
             responses={403: {"description": "the role is wider than the caller's, or the caller is an API key"}})
async def create_key(body: ApiKeyIn, request: Request, me: Principal = Depends(require(P.SELF))) -> dict:
    if me.session_id.startswith("key:"):
        raise ApiError(403, "forbidden", "an API key cannot create API keys; log in")
    role = body.role.value if body.role else me.role
    if not grantable(role, me.role):
        raise ApiError(403, "forbidden", f"role {me.role} cannot give a key the role {role}")
    key = new_key()
    async with (await request.app.state.runtime.get_pg()).acquire() as conn, conn.transaction():
        row = await repo.create(conn, me.tenant_id, me.user_id, body.name, role, key_hash(key), display_prefix(key),
                                body.expires_at)
        await append_audit(conn, me.tenant_id, me.user_id, "api_key.created", "api_key", row["id"],
                           ip=client_ip(request), user_agent=user_agent(request),
                           details={"name": body.name, "role": role,
                                    "expires_at": body.expires_at.isoformat() if body.expires_at else None})
    return {**_out(row), "key": key}


@router.get("/api-keys", response_model=ApiKeyList, summary="The caller's working API keys (never the keys themselves)")
async def list_keys(request: Request, limit: int = Query(100, ge=1, le=1000, description="items per page"),
                    cursor: str | None = Query(None, pattern=CURSOR_PATTERN, description=CURSOR_DESCRIPTION),
                    me: Principal = Depends(require(P.SELF))) -> dict:
    after = None
    if cursor is not None:
        try:
            pos = decode_cursor(cursor, ("t", "id"))
            after = (datetime.fromisoformat(pos["t"]), UUID(pos["id"]))
        except (CursorError, TypeError, ValueError):
            raise ApiError(422, "validation_error", "invalid request: cursor", details=[
                {"field": "cursor", "message": "not a cursor issued by this route", "type": "value_error"}]) from None
    rows = await repo.list_for_user(await request.app.state.runtime.get_pg(), me.user_id, after, limit + 1)
    more, rows = len(rows) > limit, rows[:limit]
    nxt = encode_cursor({"t": rows[-1]["created_at"].isoformat(), "id": str(rows[-1]["id"])}) if more else None
    return {"items": [_out(r) for r in rows], "next_cursor": nxt}


@router.delete("/api-keys/{key_id}", status_code=204, summary="Revoke one of the caller's API keys, at once",
               responses={404: {"description": "no such working key of the caller"}})
async def revoke_key(key_id: UUID, request: Request, me: Principal = Depends(require(P.SELF))) -> Response:
    rt = request.app.state.runtime
    async with (await rt.get_pg()).acquire() as conn, conn.transaction():
        row = await repo.revoke(conn, key_id, me.user_id)
        if row is None:
            raise ApiError(404, "not_found", "no such API key")
        await append_audit(conn, me.tenant_id, me.user_id, "api_key.revoked", "api_key", key_id,
                           ip=client_ip(request), user_agent=user_agent(request), details={"name": row["name"]})
    await api_keys.revoked(rt.redis, rt.settings, key_id, row["key_hash"])
    return Response(status_code=204)
