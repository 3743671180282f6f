"""Request limits at the ingress: body size (413) and the time a body may take to arrive (408).

A body larger than `max_body_bytes` is refused from its Content-Length before any of it is read, or, when
chunked, as soon as the bytes received pass the limit. A body that stops arriving (a client announcing
more bytes than it sends) is cut after `request_timeout_s`; HAProxy's `timeout http-request` (see
`cluster/haproxy_wrapper.py`) does the same for headers in throughput mode. Both answer in the error format.
"""
from __future__ import annotations

import asyncio
import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cluster.settings import Settings
from gateway.http.edge import error_body


class _BodyRefused(HTTPException):
    """An HTTPException so that FastAPI, reading the body for a route, passes it on as it is (it turns other
    exceptions raised while reading into 400); the error handlers then answer in the error format."""

    def __init__(self, status: int, message: str, details: dict):
        super().__init__(status, message, headers={"Connection": "close"})
        self.status, self.message, self.details = status, message, details


class RequestLimitMiddleware:
    """Pure ASGI middleware inside the edge (so its answers carry the trace id)."""

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.max_bytes = settings.max_body_bytes
        self.timeout_s = settings.request_timeout_s

    def _too_large(self) -> _BodyRefused:
        return _BodyRefused(413, f"request body larger than {self.max_bytes} bytes", {"limit_bytes": self.max_bytes})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        try:
            length = next((v for k, v in scope.get("headers") or () if k == b"content-length"), None)
            if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
                if not length.isdigit():
                    raise _BodyRefused(400, "invalid Content-Length", {"content_length": length.decode("latin-1")[:40]})
                raise self._too_large()
            received = 0
            body_done = False

            async def limited_receive() -> Message:
                nonlocal received, body_done
                if body_done:  # later receives wait for a disconnect: no limit on those
                    return await receive()
                try:
                    message = await asyncio.wait_for(receive(), self.timeout_s)
                except asyncio.TimeoutError:
                    raise _BodyRefused(408, f"request body not received within {self.timeout_s} s",
                                       {"timeout_s": self.timeout_s}) from None
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_bytes:
                        raise self._too_large()
                    body_done = not message.get("more_body", False)
                else:
                    body_done = True
                return message

            async def tracking_send(message: Message) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                await send(message)

            await self.app(scope, limited_receive, tracking_send)
        except _BodyRefused as exc:
            if started:
                raise
            body = json.dumps(error_body(exc.status, exc.message, details=exc.details)).encode()
            await send({"type": "http.response.start", "status": exc.status, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})


def install_request_limits(app) -> None:
    """Called from `deployments.ingress.create_app`, between the rate limiter and the edge middleware."""
    app.add_middleware(RequestLimitMiddleware, settings=app.state.settings)
