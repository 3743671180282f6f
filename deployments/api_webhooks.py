"""`POST /webhooks/provider/{name}`: signed provider callbacks that move bookings (FR-BOOK-1).

Checks, in order: a known provider (404), a configured secret (`providers/<name>#webhook_secret` in the
secrets interface; 503 while it is missing, so the provider retries), the HMAC-SHA256 signature over
`<timestamp>.<body>` with a timestamp within ±5 min (401), a valid event (422), a booking of that provider
(404, logged). An event id already applied is acknowledged and changes nothing; an event the booking's
state does not allow (late, out of order) is acknowledged as `ignored` and recorded.
"""
from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from actors.booking_handles import host_for
from adapters import registry
from cluster import compliance
from cluster.logs import get_logger, trace_id_var
from cluster.repositories import bookings as repo
from cluster.secrets import secret_store
from domain import webhooks
from domain.booking_api import WebhookAck
from domain.bookings import EVENT_STATES
from gateway.http.edge import ApiError

log = get_logger("webhooks")
router = APIRouter(tags=["webhooks"])
MAX_BODY = 64 * 1024


class ProviderEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event_id: str = Field(min_length=1, max_length=200)
    type: Literal[tuple(EVENT_STATES)]  # type: ignore[valid-type]
    booking_id: UUID | None = None
    external_id: str | None = Field(None, max_length=200)
    ts: datetime | None = None


def _secret(request: Request, provider: str) -> str | None:
    store = getattr(request.app.state, "secret_store", None)
    if store is None:
        store = request.app.state.secret_store = secret_store(request.app.state.settings)
    return store.get(f"providers/{provider}", "webhook_secret")


def _refused(provider: str, reason: str, **fields: Any) -> None:
    log.warning("webhook refused", extra={"provider": provider, "reason": reason, **fields})
    compliance.record("booking.webhook", outcome="refused", tenant_id=fields.get("tenant_id"), target=fields.get("booking_id"),
                      source=f"webhook:{provider}", reason=reason)


@router.post("/webhooks/provider/{name}", response_model=WebhookAck,
             summary="Signed provider callback (HMAC-SHA256 over timestamp.body)",
             responses={401: {"description": "missing, wrong or stale signature"},
                        404: {"description": "unknown provider or booking"},
                        413: {"description": "body over 64 KiB"}})
async def provider_webhook(name: str, request: Request) -> dict:
    try:
        registry.adapter_class(name)
    except KeyError:
        raise ApiError(404, "not_found", f"unknown provider {name!r}") from None
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ApiError(413, "payload_too_large", f"webhook bodies are at most {MAX_BODY} bytes")
    secret = _secret(request, name)
    if not secret:
        _refused(name, "webhook_not_configured")
        raise ApiError(503, "dependency_unavailable", f"webhooks of provider {name} are not configured")
    try:
        webhooks.verify(secret, request.headers.get(webhooks.TIMESTAMP_HEADER),
                        request.headers.get(webhooks.SIGNATURE_HEADER), body, time.time())
    except webhooks.BadSignature as exc:
        _refused(name, "invalid_signature", detail=str(exc))
        raise ApiError(401, "invalid_signature", str(exc)) from None
    try:
        event = ProviderEvent.model_validate(orjson.loads(body))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        details = ([{"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]} for e in exc.errors()]
                   if isinstance(exc, ValidationError) else [{"field": "body", "message": "malformed JSON"}])
        raise ApiError(422, "validation_error", "invalid webhook event", details) from None
    try:
        pool = await request.app.state.runtime.get_pg()
    except Exception:
        raise ApiError(503, "dependency_unavailable", "database unavailable") from None
    async with pool.acquire() as conn:
        if event.booking_id is not None:
            row = await repo.get(conn, event.booking_id)
        elif event.external_id:
            row = await repo.by_external_id(conn, name, event.external_id)
        else:
            row = None
        if row is None or row["provider_id"] != name:
            _refused(name, "unknown_booking", booking_id=event.booking_id, external_id=event.external_id,
                     event_id=event.event_id)
            raise ApiError(404, "not_found", "no booking of this provider matches the event")
        seen = await repo.webhook_seen(conn, name, event.event_id)
    if seen is not None:
        return {"status": "duplicate", "event_id": event.event_id, "outcome": seen["outcome"]}
    try:
        host = await host_for(request.app.state.settings, row["id"])
        out = await asyncio.wait_for(host.apply_event.remote(name, event.event_id, str(row["id"]), event.type,
                                                             trace_id_var.get()), 10.0)
    except Exception as exc:
        raise ApiError(503, "dependency_unavailable", "booking service unavailable; retry the event") from exc
    if out["status"] == "conflict":
        raise ApiError(503, "dependency_unavailable", "booking changed concurrently; retry the event")
    return {"status": out["status"], "event_id": event.event_id, "booking_id": str(row["id"]), "state": out.get("state")}
