"""The OpenAPI document, made truthful: the error model on every error status a route can answer, the
security schemes (access token, API key) on the routes that need them, tag descriptions, and examples.

FastAPI derives most of the document from the routes; this post-processing adds what it cannot know:
- every error answer is `ErrorBody` (FastAPI's own `HTTPValidationError` is never sent, so it is removed);
- 429 on every rate-limited route, 422 on every route with parameters or a body, 401/403 on routes
  behind `gateway.auth.authz.require`, 503 where a dependency (PostgreSQL, Redis, NATS, the search index)
  can be down, and whatever a route declares itself (404, 409, ...).
"""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi import routing as fastapi_routing
from fastapi.routing import APIRoute

from domain.models import ErrorBody
from gateway.http.ratelimit import EXEMPT

DESCRIPTION = """GPU Broker: one search over the GPU offers of 24 clouds and marketplaces, normalized to one schema.

What exists: marketplace search, export and offer detail; price history by GPU and time, and of one offer;
price forecasts (`/predict`); provider sync health; an AI chat that recommends real offers (`POST /ai/chat`, JSON or Server-Sent Events); accounts (organizations, login with optional TOTP, rotating refresh tokens);
tenants, users and roles; the audit trail; GDPR export and erasure; bookings through providers that can
provision (the sandbox provider for now) with signed provider webhooks; daily invoices (JSON or PDF);
liveness, readiness and metrics.
Live price changes stream over a WebSocket (see the README and `gateway/ws/PROTOCOL.md`).

Errors are always `{"error": {"code", "message", "details"?, "trace_id"}}`, a request line or header block
over 16 KB included (414 / 431); only a request over the HTTP server's 64 KB buffer, and headers that never
complete (408), get the server's plain page. List routes page the same way: `limit` and `cursor` in, `items` and `next_cursor` (null on the last page) out.
Authenticate with `Authorization: Bearer <access token>` (from `POST /auth/login`) or, for scripts,
`Authorization: Bearer gpb_...` (an API key from `POST /auth/api-keys`)."""

TAGS = [
    {"name": "marketplace", "description": "Search the normalized GPU offers; export them; one offer in detail."},
    {"name": "history", "description": "Recorded price changes: statistics by GPU over time, and one offer's log."},
    {"name": "providers", "description": "Sync health of each provider adapter."},
    {"name": "ai", "description": "AI chat: recommendations from real offers for a request in plain words."},
    {"name": "auth", "description": "Sign-up, login (with TOTP), refresh, logout, the caller's profile, API keys."},
    {"name": "admin", "description": "Tenants and plan limits, users and roles, the audit trail (by role)."},
    {"name": "gdpr", "description": "Export and erasure of the caller's personal data."},
    {"name": "bookings", "description": "Book an offer (idempotent), list, read with transitions, cancel."},
    {"name": "webhooks", "description": "Signed provider callbacks that move bookings (HMAC-SHA256, ±5 min, once per event)."},
    {"name": "billing", "description": "Daily invoices: totals equal to the metered usage, display currency, PDF."},
    {"name": "system", "description": "Liveness, readiness and Prometheus metrics."},
    {"name": "forecast", "description": "Price forecasts for a workload (1..30 days, 80/95 % intervals), and their chart."},
]

SECURITY_SCHEMES = {
    "accessToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "an access token from POST /auth/login or /auth/refresh (5 minutes by default)"},
    "apiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "gpb_ API key",
               "description": "an API key from POST /auth/api-keys, sent as `Authorization: Bearer gpb_...`"},
}

_ERROR_TEXT = {
    401: "missing, invalid or expired credentials", 403: "the caller's role lacks the permission",
    404: "not found", 409: "conflict with the current state", 422: "invalid input (the error names each field)",
    429: "rate limit exceeded (see Retry-After)", 503: "a dependency is unavailable",
}
# Routes that touch no dependency, or that report a dependency's failure inside a 200.
_NO_DEPENDENCY = {("get", "/health"), ("get", "/metrics"), ("get", "/providers/health")}
# Success answers that are not JSON models: their example is given here.
_MEDIA_EXAMPLES = {
    ("get", "/metrics"): ("text/plain", "# HELP gpubroker_http_requests_total HTTP requests\n"
                                        "gpubroker_http_requests_total{method=\"GET\",route=\"/providers\",status=\"200\"} 42.0\n"),
    ("get", "/invoices/{invoice_id}"): ("application/pdf", "%PDF-1.3 ... (the invoice as a PDF document)"),
    ("get", "/predict"): ("image/png", "<PNG image: history, forecast and bands> (with format=png)"),
    ("get", "/providers/export"): ("text/csv", "id,provider,name,gpu_type,gpu_count,...\n"
                                               "5b8e...,gcp,a3-highgpu-1g,H100-SXM,1.0,...\n"),
}


def _is_secured(route: APIRoute) -> bool:
    return any(getattr(d.call, "__name__", "").startswith("require_") for d in route.dependant.dependencies)


def _has_input(route: APIRoute) -> bool:
    d = route.dependant
    return bool(d.path_params or d.query_params or d.body_params or d.header_params
                or (route.openapi_extra or {}).get("parameters"))


def _error_content() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


def _statuses(route: APIRoute, path: str, method: str) -> dict[int, str]:
    out: dict[int, str] = {}
    if not path.startswith(EXEMPT):
        out[429] = _ERROR_TEXT[429]
    if _has_input(route):
        out[422] = _ERROR_TEXT[422]
    if route.body_field is not None:  # FastAPI answers 400 for a body it cannot decode (not UTF-8, ...)
        out[400] = "the body could not be decoded"
    if _is_secured(route):
        out[401], out[403] = _ERROR_TEXT[401], _ERROR_TEXT[403]
    if _is_secured(route) or (method, path) not in _NO_DEPENDENCY:  # the session store, or what the route reads
        out[503] = _ERROR_TEXT[503]
    return out


def _fix_operation(op: dict[str, Any], route: APIRoute, path: str, method: str) -> None:
    responses = op.setdefault("responses", {})
    for status, text in _statuses(route, path, method).items():
        responses.setdefault(str(status), {"description": text})
    for status, resp in responses.items():
        if status[0] in "45":
            resp.setdefault("description", _ERROR_TEXT.get(int(status), "error"))
            resp["content"] = _error_content()
    if _is_secured(route):
        op["security"] = [{name: []} for name in SECURITY_SCHEMES]
    media = _MEDIA_EXAMPLES.get((method, path))
    if media is not None:
        ok = next(s for s in responses if s.startswith("2"))
        content = responses[ok].setdefault("content", {})
        if not route.response_model and "application/json" in content and \
                not content["application/json"].get("schema", {}).get("type"):
            content.pop("application/json")  # FastAPI's placeholder for a non-JSON response class
        content.setdefault(media[0], {})["example"] = media[1]
        content[media[0]].setdefault("schema", {"type": "string"})


def build_openapi(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, description=DESCRIPTION, routes=app.routes,
                      tags=TAGS)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(body.pop("$defs", {}))
    schemas["ErrorBody"] = body
    doc["components"]["securitySchemes"] = dict(SECURITY_SCHEMES)
    for path, route in _api_routes(app):
        for method in route.methods:
            op = doc["paths"].get(path, {}).get(method.lower())
            if op is not None:
                _fix_operation(op, route, path, method.lower())
    return doc


def _api_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """(full path, route) of every documented API route, through included routers."""
    iter_contexts = getattr(fastapi_routing, "iter_route_contexts", None)
    if iter_contexts is None:  # FastAPI before included-router contexts: app.routes are the APIRoutes
        return [(r.path, r) for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema]
    out = []
    for ctx in iter_contexts(app.routes):
        route = ctx.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            out.append((ctx.path_format, route))
    return out


def install_openapi(app: FastAPI) -> None:
    """Serve the post-processed document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
