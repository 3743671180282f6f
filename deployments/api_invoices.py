"""`/invoices`: the tenant's daily invoices (FR-BILL-1/2), as JSON or PDF (`?format=pdf`).

Totals are the ledger's numeric sums, shown as decimal strings (never floats), with the display amount in
the tenant's currency and the FX rate, source and time it used.
"""
from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from cluster import compliance
from cluster.repositories import billing as repo
from deployments.api_bookings import next_cursor, page_offset
from deployments.invoice_pdf import render
from domain.booking_api import InvoiceDetail, InvoicePage
from domain.pagination import CURSOR_DESCRIPTION, CURSOR_PATTERN
from domain.permissions import P
from gateway.auth.authz import Principal, require
from gateway.http.edge import ApiError

router = APIRouter(tags=["billing"])


def invoice_view(row: Any) -> dict[str, Any]:
    def s(v: Any) -> str | None:
        return None if v is None else str(v)

    return {"id": str(row["id"]), "tenant_id": str(row["tenant_id"]), "period_start": row["period_start"].isoformat(),
            "period_end": row["period_end"].isoformat(), "status": row["status"], "currency": row["currency"].strip(),
            "subtotal": s(row["subtotal"]), "tax": s(row["tax"]), "total": s(row["total"]),
            "usage_minutes": row["usage_count"],
            "display": {"currency": (row["display_currency"] or row["currency"]).strip(), "total": s(row["display_total"]),
                        "fx_rate": s(row["fx_rate"]), "fx_source": row["fx_source"],
                        "fx_as_of": row["fx_as_of"].isoformat() if row["fx_as_of"] else None},
            "created_at": row["created_at"].isoformat()}


async def _pool(request: Request):
    try:
        return await request.app.state.runtime.get_pg()
    except Exception:
        raise ApiError(503, "dependency_unavailable", "database unavailable") from None


@router.get("/invoices", response_model=InvoicePage, summary="The tenant's invoices, newest period first")
async def list_invoices(request: Request, me: Principal = Depends(require(P.BILLING_READ)),
                        limit: int = Query(50, ge=1, le=200, description="items per page"),
                        cursor: str | None = Query(None, pattern=CURSOR_PATTERN, description=CURSOR_DESCRIPTION)) -> dict:
    offset = page_offset(cursor)
    async with (await _pool(request)).acquire() as conn:
        rows, total = await repo.invoices_page(conn, me.tenant_id, limit, offset)
    return {"items": [invoice_view(r) for r in rows], "next_cursor": next_cursor(offset, limit, total), "total": total}


@router.get("/invoices/{invoice_id}", response_model=InvoiceDetail, responses={404: {"description": "no such invoice"}},
            summary="One invoice with its lines; ?format=pdf for the PDF")
async def get_invoice(invoice_id: UUID, request: Request, me: Principal = Depends(require(P.BILLING_READ)),
                      format: Literal["json", "pdf"] = Query("json", description="json, or pdf for the document")) -> Any:
    async with (await _pool(request)).acquire() as conn:
        row, lines = await repo.invoice(conn, invoice_id, me.tenant_id)
    if row is None:
        raise ApiError(404, "not_found", "invoice not found")
    compliance.record("invoice.read", outcome="success", tenant_id=me.tenant_id, actor=me.user_id, target=invoice_id,
                      format=format)
    if format == "pdf":
        return Response(render(row, lines), media_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="invoice-{invoice_id}.pdf"'})
    out = invoice_view(row)
    out["lines"] = [{"booking_id": str(ln["booking_id"]), "provider": ln["provider_id"], "minutes": ln["minutes"],
                     "price_per_hour": str(ln["price_per_hour"]), "amount": str(ln["amount"])} for ln in lines]
    return out
