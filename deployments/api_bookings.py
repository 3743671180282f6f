"""`/bookings`: create (idempotent), list, read with transitions, cancel (FR-BOOK-1/2).

Accepting is one PostgreSQL statement, its own transaction (the offer re-checked before, its price locked
into a Draft booking with its transition, audit entry and outbox event) and a hand-off, not awaited, to the booking's host actor, which submits
it (Draft -> PendingProvision) and provisions in the background; the answer is the Draft. If the hand-off
is lost the booking stays a Draft and its host adopts it on its next sweep or start. Other tenants' bookings answer 404.
"""
from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from actors.booking_handles import hand_off, host_for
from adapters import registry
from cluster import compliance
from cluster.logs import get_logger, trace_id_var
from cluster.repositories import billing as billing_repo
from cluster.repositories import bookings as repo
from domain import bookings as rules
from domain.audit import now_utc
from domain.booking_api import BookingDetail, BookingOut, BookingPage
from domain.models import BookingState
from domain.pagination import CURSOR_DESCRIPTION, CURSOR_PATTERN, CursorError, decode_cursor, encode_cursor
from domain.permissions import P
from gateway.auth.authz import Principal, require
from gateway.http.edge import ApiError

log = get_logger("bookings")
router = APIRouter(tags=["bookings"])
HOST_CALL_TIMEOUT_S = 5.0
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"  # printable ASCII, no spaces


class BookingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offer_id: UUID
    hours: Decimal | None = Field(None, gt=0, le=rules.MAX_HOURS, description="length of the booking")
    end: datetime | None = Field(None, description="end of the booking (ISO-8601 with timezone); instead of hours")
    price_per_hour: Decimal | None = Field(None, gt=0, description="the price the client was shown; if the offer "
                                           "now costs something else the answer is 409 price_changed")

    @model_validator(mode="after")
    def _one_span(self) -> "BookingIn":
        if (self.hours is None) == (self.end is None):
            raise ValueError("give exactly one of hours or end")
        if self.end is not None and self.end.tzinfo is None:
            raise ValueError("end must carry a timezone")
        return self


def page_offset(cursor: str | None) -> int:
    """The offset in a list cursor of these routes (`{"o": n}`); a foreign one is a 422 naming `cursor`."""
    if cursor is None:
        return 0
    try:
        o = decode_cursor(cursor, ("o",))["o"]
        if not isinstance(o, int) or isinstance(o, bool) or not 0 <= o <= 1_000_000_000:
            raise CursorError("bad offset")
        return o
    except CursorError:
        raise ApiError(422, "validation_error", "invalid request: cursor", details=[
            {"field": "cursor", "message": "not a cursor issued by this route", "type": "value_error"}]) from None


def next_cursor(offset: int, limit: int, total: int) -> str | None:
    return encode_cursor({"o": offset + limit}) if offset + limit < total else None


def _money(v: Any) -> str | None:
    return None if v is None else str(v)


def booking_view(row: Any) -> dict[str, Any]:
    """A booking as the API shows it; money as decimal strings, never floats."""
    return {"id": str(row["id"]), "tenant_id": str(row["tenant_id"]), "user_id": str(row["user_id"]),
            "offer_id": str(row["offer_id"]), "provider": row["provider_id"], "state": row["status"],
            "version": row["version"], "start_time": row["start_time"].isoformat(),
            "end_time": row["end_time"].isoformat(), "price_per_hour": _money(row["price_per_hour"]),
            "currency": (row["currency"] or "").strip(), "cost_estimate": _money(row["cost_estimate"]),
            "cost_actual": _money(row["cost_actual"]), "external_booking_id": row["external_booking_id"],
            "last_error": row["last_error"], "created_at": row["created_at"].isoformat(),
            "updated_at": row["updated_at"].isoformat()}


async def _pool(request: Request):
    try:
        return await request.app.state.runtime.get_pg()
    except Exception:
        raise ApiError(503, "dependency_unavailable", "database unavailable") from None


def _refuse(me: Principal, status: int, code: str, message: str, details: Any = None, target: Any = None) -> ApiError:
    compliance.record("booking.create", outcome="refused", tenant_id=me.tenant_id, actor=me.user_id, target=target,
                      reason=code)
    return ApiError(status, code, message, details)


def _offer_refusal(offer: Any, body: BookingIn, max_age_s: float) -> tuple | None:
    """The re-check before accepting: bookable provider, offer up and fresh, price as the client saw it.
    Returns the refusal (status, code, message, details), or None."""
    if offer is None:
        return 404, "not_found", "offer not found", None
    try:
        supported = registry.adapter_class(offer["provider_id"]).SUPPORTS_PROVISIONING
    except KeyError:
        supported = False
    if not supported:
        return (409, "offer_unavailable", f"booking through provider {offer['provider_id']} is not supported yet",
                {"reason": "provider_unsupported"})
    if offer["availability"] != "up":
        return (409, "offer_unavailable", f"the offer is {offer['availability']}",
                {"reason": "unavailable", "availability": offer["availability"]})
    if offer["age"].total_seconds() > max_age_s:
        return (409, "offer_unavailable", "the offer is stale (not confirmed by its provider recently)",
                {"reason": "stale", "last_seen_at": offer["last_seen_at"].isoformat()})
    if body.price_per_hour is not None and body.price_per_hour != offer["price_per_hour"]:
        return (409, "price_changed", "the offer's price changed",
                {"price_per_hour": str(offer["price_per_hour"]), "currency": offer["currency"].strip(),
                 "seen": str(body.price_per_hour)})
    return None


def _replay(me: Principal, row: Any, fingerprint: str) -> JSONResponse:
    if row["request_hash"] != fingerprint:
        raise _refuse(me, 422, "idempotency_key_reused", "this Idempotency-Key was used with another request body",
                      {"booking_id": str(row["id"])}, row["id"])
    return JSONResponse(booking_view(row), status_code=201, headers={"Idempotent-Replayed": "true"})


@router.post("/bookings", status_code=201, response_model=BookingOut,
             summary="Book an offer (idempotent with Idempotency-Key: a replay answers the same booking)",
             responses={409: {"description": "offer_unavailable or price_changed (with the new price)"},
                        404: {"description": "no such offer"},
                        422: {"description": "invalid body, or an Idempotency-Key reused with another body"}})
async def create_booking(body: BookingIn, request: Request, me: Principal = Depends(require(P.BOOKINGS_WRITE)),
                         idempotency_key: str | None = Header(None, pattern=IDEMPOTENCY_KEY_PATTERN)) -> Any:
    settings = request.app.state.settings
    fingerprint = rules.request_fingerprint(body.model_dump(mode="json"))
    trace_id = trace_id_var.get()
    pool = await _pool(request)
    async with pool.acquire() as conn:
        # The Idempotency-Key is looked up only when this request would not insert: a refused re-check (a
        # replay answers the booking made, even if the offer changed since) or a taken key (the insert's
        # ON CONFLICT). The common first request saves a round trip.
        start, offer = now_utc(), await repo.offer_for_booking(conn, body.offer_id)
        refusal = _offer_refusal(offer, body, settings.booking_offer_max_age_s)
        try:
            end = rules.end_time(start, body.hours, body.end)
        except ValueError as exc:
            refusal = refusal or (422, "validation_error", str(exc),
                                  [{"field": "hours" if body.hours else "end", "message": str(exc)}])
        if refusal is not None:
            existing = idempotency_key and await repo.by_idempotency_key(conn, me.tenant_id, idempotency_key)
            if existing:
                return _replay(me, existing, fingerprint)
            if refusal[0] == 422:
                raise ApiError(*refusal)
            raise _refuse(me, *refusal, target=body.offer_id)
        row, event = await repo.create(conn, settings, tenant_id=me.tenant_id, user_id=me.user_id, offer=offer,
                                       start=start, end=end, idempotency_key=idempotency_key,
                                       request_hash=fingerprint, trace_id=trace_id)
        if row is None:  # a concurrent request with the same key won
            return _replay(me, await repo.by_idempotency_key(conn, me.tenant_id, idempotency_key or ""), fingerprint)
    compliance.record("booking.create", outcome="success", tenant_id=me.tenant_id, actor=me.user_id, target=row["id"],
                      provider=offer["provider_id"])
    view = booking_view(row)
    try:
        # handed off, not awaited: accepting is the committed Draft (SRS: accept and enqueue in 500 ms,
        # provisioning async). Waiting for the host's Draft -> PendingProvision transaction made accept
        # p95 6.3 s at 100 clients on a quiet machine (benchmarks/bookings.py). A lost hand-off leaves a
        # Draft, which its host adopts when it starts and on every sweep.
        hand_off(settings, row["id"], event, trace_id)
    except Exception as exc:
        log.warning("booking host unreachable; the Draft waits for its host", extra={"booking_id": view["id"],
                                                                                     "error": str(exc)[:200]})
    return JSONResponse(view, status_code=201)


@router.get("/bookings", response_model=BookingPage, summary="The tenant's bookings, newest first (filter by state)")
async def list_bookings(request: Request, me: Principal = Depends(require(P.BOOKINGS_READ)),
                        state: BookingState | None = Query(None, description="only bookings in this state"),
                        limit: int = Query(50, ge=1, le=200, description="items per page"),
                        cursor: str | None = Query(None, pattern=CURSOR_PATTERN, description=CURSOR_DESCRIPTION)) -> dict:
    offset = page_offset(cursor)
    async with (await _pool(request)).acquire() as conn:
        rows, total = await repo.page(conn, me.tenant_id, state.value if state else None, limit, offset)
    return {"items": [booking_view(r) for r in rows], "next_cursor": next_cursor(offset, limit, total), "total": total}


@router.get("/bookings/{booking_id}", response_model=BookingDetail, responses={404: {"description": "no such booking"}},
            summary="One booking with its transitions and metered usage")
async def get_booking(booking_id: UUID, request: Request, me: Principal = Depends(require(P.BOOKINGS_READ))) -> dict:
    async with (await _pool(request)).acquire() as conn:
        row = await repo.get(conn, booking_id, me.tenant_id)
        if row is None:
            raise ApiError(404, "not_found", "booking not found")
        steps = await repo.transitions(conn, booking_id)
        minutes, amount = await billing_repo.usage_of(conn, booking_id)
    out = booking_view(row)
    out["transitions"] = [{"version": t["version"], "from": t["from_state"], "to": t["to_state"],
                           "source": t["source"], "reason": t["reason"], "ts": t["ts"].isoformat()} for t in steps]
    out["usage"] = {"minutes": minutes, "amount": str(amount)}
    return out


@router.post("/bookings/{booking_id}/cancel", response_model=BookingOut,
             summary="Cancel a booking (releases the machine, closes the meter)",
             responses={404: {"description": "no such booking"},
                        409: {"description": "illegal_transition: the booking is already final"}})
async def cancel_booking(booking_id: UUID, request: Request, me: Principal = Depends(require(P.BOOKINGS_WRITE))) -> dict:
    settings = request.app.state.settings
    async with (await _pool(request)).acquire() as conn:
        if await repo.get(conn, booking_id, me.tenant_id) is None:
            raise ApiError(404, "not_found", "booking not found")
    try:
        host = await host_for(settings, booking_id)
        out = await asyncio.wait_for(host.cancel.remote(str(booking_id), str(me.user_id), trace_id_var.get()),
                                     HOST_CALL_TIMEOUT_S)
    except Exception as exc:
        raise ApiError(503, "dependency_unavailable", "booking service unavailable; retry") from exc
    if out["status"] == "illegal":
        raise ApiError(409, "illegal_transition", f"illegal transition {out['from']} -> {out['to']}",
                       {"from": out["from"], "to": out["to"]})
    if out["status"] != "applied":
        raise ApiError(503, "dependency_unavailable", f"booking changed concurrently ({out['status']}); retry")
    async with (await _pool(request)).acquire() as conn:
        row = await repo.get(conn, booking_id, me.tenant_id)
    return booking_view(row)
