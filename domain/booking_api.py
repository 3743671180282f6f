"""Response models of the booking, webhook and invoice routes (one example each, for the OpenAPI document).

Money is a decimal string everywhere (never a JSON number): the ledger is exact and so is what it shows.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from domain.models import BookingState

_T = "2026-12-01T14:00:00+00:00"
_BID, _TID, _UID = "0b6f1d9e-2c4a-4e8b-9f10-3a5b7c9d1e2f", "7a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b", \
    "2f0c6f5e-3d1b-4c8e-9a55-1b0c2d3e4f50"
_OID = "5b8e0c1d-2e3f-4a5b-8c7d-9e0f1a2b3c4d"
_BOOKING = {"id": _BID, "tenant_id": _TID, "user_id": _UID, "offer_id": _OID, "provider": "sandbox",
            "state": "PendingProvision", "version": 1, "start_time": _T, "end_time": "2026-12-01T15:00:00+00:00",
            "price_per_hour": "0.440000", "currency": "USD", "cost_estimate": "0.440000", "cost_actual": None,
            "external_booking_id": None, "last_error": None, "created_at": _T, "updated_at": _T}


def _example(example: dict) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


class BookingOut(BaseModel):
    model_config = _example(_BOOKING)
    id: str
    tenant_id: str
    user_id: str
    offer_id: str
    provider: str | None = None
    state: BookingState
    version: int = Field(description="increases by one with every transition")
    start_time: str
    end_time: str
    price_per_hour: str | None = Field(None, description="locked when the booking was accepted (decimal string)")
    currency: str
    cost_estimate: str | None = None
    cost_actual: str | None = Field(None, description="the metered cost, once the booking has ended")
    external_booking_id: str | None = None
    last_error: str | None = None
    created_at: str
    updated_at: str


class Transition(BaseModel):
    version: int
    from_: BookingState | None = Field(None, alias="from")
    to: BookingState
    source: str = Field(description="api, webhook:<provider>, status, timeout or schedule")
    reason: str | None = None
    ts: str

    model_config = ConfigDict(populate_by_name=True)


class Usage(BaseModel):
    minutes: int
    amount: str


class BookingDetail(BookingOut):
    model_config = _example({**_BOOKING, "transitions": [
        {"version": 0, "from": None, "to": "Draft", "source": "api", "reason": None, "ts": _T},
        {"version": 1, "from": "Draft", "to": "PendingProvision", "source": "api", "reason": None, "ts": _T}],
        "usage": {"minutes": 0, "amount": "0"}})
    transitions: list[Transition]
    usage: Usage


class BookingPage(BaseModel):
    model_config = _example({"items": [_BOOKING], "next_cursor": None, "total": 1})
    items: list[BookingOut]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page; null on the last page")
    total: int


class WebhookAck(BaseModel):
    model_config = _example({"status": "applied", "event_id": "evt-1", "booking_id": _BID, "state": "Active"})
    status: str = Field(description="applied, duplicate (this event id was applied before) or ignored (stale)")
    event_id: str
    booking_id: str | None = None
    state: BookingState | None = None
    outcome: str | None = None


class Display(BaseModel):
    currency: str
    total: str | None = None
    fx_rate: str | None = None
    fx_source: str | None = None
    fx_as_of: str | None = None


_INVOICE = {"id": "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a", "tenant_id": _TID, "period_start": "2026-12-01T00:00:00+00:00",
            "period_end": "2026-12-02T00:00:00+00:00", "status": "draft", "currency": "USD", "subtotal": "0.722667",
            "tax": "0.000000", "total": "0.722667", "usage_minutes": 10,
            "display": {"currency": "EUR", "total": "0.66", "fx_rate": "0.9123456789", "fx_source": "ECB reference rate",
                        "fx_as_of": "2026-12-01T13:00:00+00:00"}, "created_at": _T}


class InvoiceOut(BaseModel):
    model_config = _example(_INVOICE)
    id: str
    tenant_id: str
    period_start: str
    period_end: str
    status: str
    currency: str
    subtotal: str | None = None
    tax: str | None = None
    total: str | None = Field(None, description="the exact sum of the period's usage (decimal string)")
    usage_minutes: int
    display: Display
    created_at: str


class InvoiceLine(BaseModel):
    booking_id: str
    provider: str | None = None
    minutes: int
    price_per_hour: str
    amount: str


class InvoiceDetail(InvoiceOut):
    model_config = _example({**_INVOICE, "lines": [{"booking_id": _BID, "provider": "sandbox", "minutes": 10,
                                                    "price_per_hour": "4.336000", "amount": "0.722667"}]})
    lines: list[InvoiceLine]


class InvoicePage(BaseModel):
    model_config = _example({"items": [_INVOICE], "next_cursor": None, "total": 1})
    items: list[InvoiceOut]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page; null on the last page")
    total: int
