"""Which route each SDK call uses and how its arguments travel (query, path, JSON body, header), and the
request building and answer decoding that `Client` and `AsyncClient` share. A test checks `ENDPOINTS`
against the OpenAPI document."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator

import httpx
from pydantic import BaseModel, TypeAdapter
from pydantic_core import to_jsonable_python

from domain.booking_api import BookingDetail, BookingOut, BookingPage, InvoiceDetail, InvoicePage
from domain.chat import ChatResponse
from domain.forecast import ForecastResponse
from domain.history import GpuHistory, OfferHistoryPage
from domain.models import OfferDetail, ProviderOffer, SearchPage
from gpubroker.errors import error_from_body, error_from_response

__all__ = ["ChatEvent", "ENDPOINTS", "Endpoint", "FILTERS", "STREAM_FILTERS", "SseReader", "build_request",
           "decode", "export_result"]

FILTERS = ("gpu_type", "gpu_count", "min_gpu_count", "min_gpu_memory_gb", "provider", "region", "country",
           "continent", "max_price", "max_price_per_gpu", "pricing", "availability", "min_vcpu", "min_memory_gb",
           "tags", "q")
STREAM_FILTERS = ("gpu_type", "provider", "region", "country", "continent", "pricing", "max_price")
PAGE = ("limit", "cursor")
FORECAST_FIELDS = ("gpu_type", "region", "provider", "pricing", "gpu_count", "hours", "horizon_days")


@dataclass(frozen=True)
class Endpoint:
    """The route an SDK call uses: query parameters it may send (API names), JSON body fields it fills from
    its arguments, constant body fields, headers (SDK argument -> header name) and the answer's model."""

    method: str
    path: str
    params: tuple[str, ...]
    model: type[BaseModel] | None
    body: tuple[str, ...] = ()
    fixed: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


ENDPOINTS: dict[str, Endpoint] = {
    "search": Endpoint("GET", "/providers", FILTERS + ("sort",) + PAGE, SearchPage),
    "offer": Endpoint("GET", "/providers/{id}", (), OfferDetail),
    "export": Endpoint("GET", "/providers/export", FILTERS + ("sort", "format"), None),
    "history": Endpoint("GET", "/prices/history", ("gpu_type", "from", "to", "bucket", "provider", "pricing"),
                        GpuHistory),
    "offer_history": Endpoint("GET", "/providers/{id}/history", ("from", "to") + PAGE, OfferHistoryPage),
    "book": Endpoint("POST", "/bookings", (), BookingOut, body=("offer_id", "hours", "end", "price_per_hour"),
                     headers={"idempotency_key": "Idempotency-Key"}),
    "bookings": Endpoint("GET", "/bookings", ("state",) + PAGE, BookingPage),
    "booking": Endpoint("GET", "/bookings/{booking_id}", (), BookingDetail),
    "cancel_booking": Endpoint("POST", "/bookings/{booking_id}/cancel", (), BookingOut),
    "invoices": Endpoint("GET", "/invoices", PAGE, InvoicePage),
    "invoice": Endpoint("GET", "/invoices/{invoice_id}", (), InvoiceDetail),
    "predict": Endpoint("POST", "/predict", (), ForecastResponse, body=FORECAST_FIELDS),
    "chat": Endpoint("POST", "/ai/chat", (), ChatResponse, body=("prompt", "constraints"), fixed={"stream": False}),
    "chat_stream": Endpoint("POST", "/ai/chat", (), None, body=("prompt", "constraints"), fixed={"stream": True}),
}
_OFFERS = TypeAdapter(list[ProviderOffer])
# An SSE `error` event carries the error format but no HTTP status (the answer already began with 200).
STREAM_ERROR_STATUS = {"dependency_unavailable": 503, "validation_error": 422, "not_found": 404}


class ChatEvent(BaseModel):
    """One Server-Sent Event of `chat_stream`: `result` (the answer without its summary), `token`
    ({text}: the summary piece by piece) or `done` ({summary, engine, degraded, degraded_reason})."""

    event: str
    data: dict[str, Any]


def _param(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return ",".join(str(_param(v)) for v in value)
    if isinstance(value, datetime):
        return value.isoformat()
    return getattr(value, "value", value)


def _json(value: Any) -> Any:
    # a model keeps only the fields the caller set: the chat API treats given constraints as binding
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    return to_jsonable_python(value)


def build_request(name: str, path_id: Any = None, **args: Any) -> dict[str, Any]:
    """httpx.request keyword arguments of an SDK call; unknown argument names are a TypeError, never sent."""
    ep = ENDPOINTS[name]
    unknown = set(args) - set(ep.params) - set(ep.body) - set(ep.headers)
    if unknown:
        raise TypeError(f"{name}() got unexpected parameters: {', '.join(sorted(unknown))}")
    given = {k: v for k, v in args.items() if v is not None}
    path = ep.path
    if path_id is not None:
        path = path[:path.index("{")] + str(path_id) + path[path.index("}") + 1:]
    out: dict[str, Any] = {"method": ep.method, "url": path,
                           "params": {k: _param(v) for k, v in given.items() if k in ep.params}}
    if ep.body or ep.fixed:
        out["json"] = {**{k: _json(v) for k, v in given.items() if k in ep.body}, **ep.fixed}
    if ep.headers:
        out["headers"] = {ep.headers[k]: str(v) for k, v in given.items() if k in ep.headers}
    return out


def decode(name: str, response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise error_from_response(response)
    model = ENDPOINTS[name].model
    return model.model_validate_json(response.content) if model is not None else response


def export_result(response: httpx.Response, fmt: str) -> str | list[ProviderOffer]:
    return _OFFERS.validate_json(response.content) if fmt == "json" else response.text


class SseReader:
    """Turns the text lines of an SSE answer into `ChatEvent`s; an `error` event raises its typed error."""

    def __init__(self) -> None:
        self.event: str | None = None
        self.data: list[str] = []

    def feed(self, line: str) -> ChatEvent | None:
        if line.startswith("event:"):
            self.event = line[6:].strip()
        elif line.startswith("data:"):
            self.data.append(line[5:].strip())
        elif not line and self.event is not None:
            event, payload = self.event, json.loads("\n".join(self.data) or "{}")
            self.event, self.data = None, []
            if event == "error":
                err = payload.get("error", {})
                status = STREAM_ERROR_STATUS.get(err.get("code"), 500)
                raise error_from_body(status, err.get("code", "error"), err.get("message", ""), err.get("details"),
                                      err.get("trace_id"))
            return ChatEvent(event=event, data=payload)
        return None
