"""GDPR data subject requests (FR-SEC-1, COMP-GDPR-1): export and erasure of the caller's personal data.

Export: profile, login sessions, MFA state, bookings, the tenant's invoices (when the caller may read
billing or is the tenant's only member) and every audit entry by or about the caller, as one JSON doc.

Erasure pseudonymizes rather than deletes rows other records must keep (bookings and invoices have
legal retention): the email becomes `erased-<id>@erased.invalid`, the password hash becomes unusable,
TOTP secrets and recovery codes are deleted, sessions are revoked and their ip/user agent cleared.
Audit entries never held emails (ips are truncated, ids are opaque), so the hash chain still verifies.
Both requests are themselves audited.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from cluster.audit import append_audit, list_audit
from cluster.db import run_transaction
from cluster.repositories import gdpr, user_accounts
from domain.api import DataExport, Erased
from domain.audit import now_utc
from domain.permissions import P
from gateway.auth import live_sessions, mfa, sessions
from gateway.auth.authz import Principal, client_ip, require, user_agent
from gateway.http.edge import ApiError

router = APIRouter(tags=["gdpr"])


class EraseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confirm: str = Field(pattern=r"^ERASE MY DATA$", description='the literal "ERASE MY DATA"')


def _json(v: Any) -> Any:
    if isinstance(v, UUID):
        return str(v)
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat()
    return v


def _rows(rows) -> list[dict[str, Any]]:
    return [{k: _json(v) for k, v in dict(r).items()} for r in rows]


@router.get("/data-request", summary="Export all personal data of the caller as one JSON document",
            response_model=DataExport)
async def export(request: Request, me: Principal = Depends(require(P.SELF))) -> dict:
    ip, ua = client_ip(request), user_agent(request)

    async def collect(conn) -> dict[str, Any]:
        """One consistent snapshot (REPEATABLE READ) of everything, audited in the same transaction."""
        members = await user_accounts.count_members(conn, me.tenant_id)
        rows = await gdpr.export_rows(conn, me.user_id, me.tenant_id, me.can(P.BILLING_READ) or members <= 1)
        bookings, invoices = rows["bookings"], rows["invoices"]
        audit, after = [], 0
        while True:
            page = await list_audit(conn, me.tenant_id, user_id=me.user_id, after_id=after, limit=1000)
            audit.extend(page)
            if len(page) < 1000:
                break
            after = page[-1]["id"]
        await append_audit(conn, me.tenant_id, me.user_id, "data.exported", "user", me.user_id,
                           ip=ip, user_agent=ua,
                           details={"bookings": len(bookings), "invoices": len(invoices), "audit": len(audit)})
        return {**rows, "audit": audit}

    got = await run_transaction(await request.app.state.runtime.get_pg(), collect, isolation="repeatable_read")
    profile, mfa_row = got["profile"], got["mfa"]
    return {
        "generated_at": now_utc().isoformat(),
        "profile": {k: _json(v) for k, v in dict(profile).items()},
        "sessions": _rows(got["sessions"]),
        "mfa": {k: _json(v) for k, v in dict(mfa_row).items()} if mfa_row else None,
        "bookings": _rows(got["bookings"]),
        "invoices": _rows(got["invoices"]),
        "audit_entries": _rows(got["audit"]),
    }


@router.post("/data-request/delete", summary="Erase the caller's personal data (pseudonymize; ends every session)",
             response_model=Erased, responses={409: {"description": "the tenant's last admin must first assign another"}})
async def erase(body: EraseIn, request: Request, me: Principal = Depends(require(P.SELF))) -> dict:
    rt = request.app.state.runtime
    async with (await rt.get_pg()).acquire() as conn, conn.transaction():
        others = await user_accounts.count_admins(conn, me.tenant_id, except_user=me.user_id)
        members = await user_accounts.count_members(conn, me.tenant_id)
        if me.role == "admin" and others == 0 and members > 1:
            raise ApiError(409, "conflict", "assign another admin before erasing the tenant's last admin")
        await user_accounts.pseudonymize(conn, me.user_id)
        await mfa.remove(conn, me.user_id)
        revoked = await sessions.revoke_sessions(conn, reason="erased", user_id=me.user_id)
        await gdpr.clear_session_origins(conn, me.user_id)
        await append_audit(conn, me.tenant_id, me.user_id, "data.erased", "user", me.user_id,
                           details={"sessions_revoked": len(revoked), "retained": ["bookings", "invoices", "audit"]})
    await live_sessions.revoke(rt.redis, rt.settings, revoked + [me.session_id])
    return {"status": "erased", "user_id": str(me.user_id)}
