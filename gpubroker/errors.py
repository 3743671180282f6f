"""Errors the SDK raises. Every API error answer becomes one of these, with its code and trace id.

    GpuBrokerError                 any failure of a call
    ├── ApiError                   the API answered an error: status, code, message, details, trace_id
    │   ├── BadRequest             400 / 422: invalid input (details name each field)
    │   ├── Unauthorized           401: missing, invalid, expired or revoked credentials
    │   ├── Forbidden              403: the role lacks the permission
    │   ├── NotFound               404
    │   ├── Conflict               409
    │   ├── RateLimited            429: retry_after seconds
    │   └── Unavailable            503 (and other 5xx): a dependency is down; retrying later may help
    └── TransportError             no answer at all (connection refused, timeout)
"""
from __future__ import annotations

from typing import Any

import httpx

__all__ = ["ApiError", "BadRequest", "Conflict", "Forbidden", "GpuBrokerError", "NotFound", "RateLimited",
           "TransportError", "Unauthorized", "Unavailable", "error_from_body", "error_from_response"]


class GpuBrokerError(Exception):
    """Base of every SDK error."""


class TransportError(GpuBrokerError):
    """The API could not be reached or did not answer in time."""


class ApiError(GpuBrokerError):
    """The API answered `{"error": {code, message, details?, trace_id}}` with an error status."""

    def __init__(self, status: int, code: str, message: str, details: Any = None, trace_id: str | None = None):
        super().__init__(f"{status} {code}: {message} (trace {trace_id})")
        self.status, self.code, self.message, self.details, self.trace_id = status, code, message, details, trace_id


class BadRequest(ApiError):
    """The request was invalid (400, 422); `details` lists {field, message} per bad field."""


class Unauthorized(ApiError):
    """No valid credentials (401)."""


class Forbidden(ApiError):
    """The credentials' role may not do this (403)."""


class NotFound(ApiError):
    """No such resource (404)."""


class Conflict(ApiError):
    """The request conflicts with the current state (409)."""


class RateLimited(ApiError):
    """Over the rate limit (429); wait `retry_after` seconds."""

    retry_after: float | None = None


class Unavailable(ApiError):
    """A dependency of the API is down (503, or another 5xx)."""


_BY_STATUS = {400: BadRequest, 422: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
              429: RateLimited}


def error_from_body(status: int, code: str, message: str, details: Any = None, trace_id: str | None = None) -> ApiError:
    """The typed error of an error status and the fields of the error format."""
    cls = _BY_STATUS.get(status, Unavailable if status >= 500 else ApiError)
    return cls(status, code, message, details, trace_id)


def error_from_response(response: httpx.Response) -> ApiError:
    """The typed error of an error answer (a body not in the error format still gives status and text)."""
    try:
        err = response.json()["error"]
        code, message, details, trace = err["code"], err["message"], err.get("details"), err.get("trace_id")
    except (ValueError, KeyError, TypeError):
        code, message, details = "error", response.text[:200] or response.reason_phrase, None
        trace = response.headers.get("x-trace-id")
    exc = error_from_body(response.status_code, code, message, details, trace)
    if isinstance(exc, RateLimited):
        try:
            exc.retry_after = float(response.headers.get("retry-after", ""))
        except ValueError:
            exc.retry_after = None
    return exc
