"""HTTP edge: W3C trace context, the one JSON error format, and per-route metrics.

Every response carries `traceparent` and `X-Trace-Id`; every error is
`{"error": {"code", "message", "details"?, "trace_id"}}`, including 404, 405, 422 and unhandled exceptions.
An exception that means a dependency is down (`cluster.dependencies`) answers 503 `dependency_unavailable`
with `Retry-After`; any other unhandled exception answers 500 and is logged once, with its traceback.
"""
from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cluster.dependencies import RETRY_AFTER_S, dependency_down
from cluster.logs import get_logger, span_id_var, trace_id_var
from gateway.http.metrics import HTTP_ERRORS, HTTP_IN_FLIGHT, HTTP_LATENCY, HTTP_REQUESTS

log = get_logger("http")
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

STATUS_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    408: "request_timeout", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
    429: "rate_limited", 500: "internal_error", 502: "bad_gateway", 503: "unavailable", 504: "timeout",
}


class ApiError(Exception):
    """Raise from any handler to answer in the error format with this status and code."""

    def __init__(self, status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details, self.headers = status, code, message, details, headers


def parse_traceparent(value: str | None) -> tuple[str, str | None, str]:
    """Return (trace_id, parent_span_id, flags) from a W3C traceparent, or a fresh root when absent/invalid."""
    if value:
        m = _TRACEPARENT.match(value.strip().lower())
        if m and m.group(1) != "ff" and m.group(2) != "0" * 32 and m.group(3) != "0" * 16:
            return m.group(2), m.group(3), m.group(4)
    return secrets.token_hex(16), None, "01"


def error_body(status: int, message: str, code: str | None = None, details: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code or STATUS_CODES.get(status, "error"), "message": message}
    if details is not None:
        err["details"] = details
    err["trace_id"] = trace_id_var.get() or ""
    return {"error": err}


def error_response(status: int, message: str, code: str | None = None, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, code, details), status_code=status, headers=headers)


def _field_of(loc: tuple | list, err_type: str | None = None) -> str:
    if err_type == "json_invalid":  # loc is ("body", <character offset>): the body as a whole is bad
        return "body"
    parts = [str(p) for p in loc if p not in ("query", "body", "path", "header", "cookie")]
    return ".".join(parts) or (str(loc[0]) if loc else "request")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        msg = exc.detail if isinstance(exc.detail, str) else STATUS_CODES.get(exc.status_code, "error")
        if exc.status_code == 404 and msg == "Not Found":
            msg = f"no route for {request.method} {request.url.path}"
        elif exc.status_code == 405:
            msg = f"method {request.method} not allowed on {request.url.path}"
        return error_response(exc.status_code, msg, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        details = []
        for e in exc.errors():
            msg = e.get("msg", "invalid")
            if e.get("type") == "json_invalid":
                pos = (e.get("loc") or ("body", None))[-1]
                msg = f"malformed JSON{f' at character {pos}' if isinstance(pos, int) else ''}: {(e.get('ctx') or {}).get('error', msg)}"
            details.append({"field": _field_of(e.get("loc", ()), e.get("type")), "message": msg, "type": e.get("type")})
        fields = ", ".join(dict.fromkeys(d["field"] for d in details))
        return error_response(422, f"invalid request: {fields}", details=details)

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.code, exc.details, exc.headers)


class EdgeMiddleware:
    """Pure ASGI middleware: trace context, catch-all 500 in the error format, metrics and access log."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        trace_id, parent, flags = parse_traceparent(headers.get(b"traceparent", b"").decode("latin-1") or None)
        span_id = secrets.token_hex(8)
        t_tok, s_tok = trace_id_var.set(trace_id), span_id_var.set(span_id)
        scope.setdefault("state", {})["trace_id"] = trace_id
        trace_headers = [(b"traceparent", f"00-{trace_id}-{span_id}-{flags}".encode()), (b"x-trace-id", trace_id.encode())]
        status_holder = {"status": 500, "started": False, "code": None}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + trace_headers
            await send(message)

        t0 = time.perf_counter()
        HTTP_IN_FLIGHT.inc()
        logged = False
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            dep = dependency_down(exc)
            if dep is not None:
                status, body_doc, extra = 503, error_body(
                    503, f"{dep} is unavailable; retry later", "dependency_unavailable", {"dependency": dep}), \
                    [(b"retry-after", str(RETRY_AFTER_S).encode())]
                log.warning("dependency unavailable", extra={"dependency": dep, "route": route,
                                                             "method": scope.get("method"),
                                                             "error": f"{type(exc).__name__}: {exc}"[:300]})
            else:
                status, body_doc, extra = 500, error_body(500, "internal server error"), []
                log.error("unhandled error", exc_info=exc, extra={"route": route, "method": scope.get("method")})
            logged = True
            if not status_holder["started"]:
                body = json.dumps(body_doc).encode()
                await send_wrapper({"type": "http.response.start", "status": status,
                                    "headers": [(b"content-type", b"application/json"),
                                                (b"content-length", str(len(body)).encode()), *extra]})
                await send({"type": "http.response.body", "body": body})
        finally:
            HTTP_IN_FLIGHT.dec()
            elapsed = time.perf_counter() - t0
            route = scope.get("route")
            route_label = getattr(route, "path", None) or "<unmatched>"
            method = scope.get("method", "GET")
            status = status_holder["status"]
            HTTP_REQUESTS.labels(method, route_label, str(status)).inc()
            HTTP_LATENCY.labels(method, route_label).observe(elapsed)
            if status >= 400:
                HTTP_ERRORS.labels(route_label, STATUS_CODES.get(status, str(status))).inc()
            if (status >= 500 and not logged) or elapsed > 1.0:
                log.warning("request", extra={"method": method, "route": route_label, "status": status,
                                              "duration_ms": round(elapsed * 1000, 2)})
            trace_id_var.reset(t_tok)
            span_id_var.reset(s_tok)
