"""Request limits on the running system: body size, slow and incomplete requests, oversized headers and
queries (HAProxy's own answers in the error format), HAProxy's admin ports on loopback, NUL bytes and
integer overflow, and the one log line of a 500."""
from __future__ import annotations

import asyncio
import io
import json
import socket
import subprocess

import pytest

from tests.auth_fixtures import PASSWORD, new_email, signup


def _raw(port: int, data: bytes, wait_s: float = 30.0, then: bytes = b"") -> tuple[int, dict, bytes]:
    """Send raw bytes (optionally more after a pause), read one HTTP response: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as s:
        s.sendall(data)
        if then:
            s.sendall(then)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        length = int(headers.get("content-length", "-1"))
        while length >= 0 and len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(lines[0].split()[1]), headers, body


def _error(body: bytes, code: str) -> dict:
    err = json.loads(body)["error"]
    assert err["code"] == code, err
    assert len(err["trace_id"]) == 32, err
    return err


def _post(path: str, length: int, body: bytes = b"", extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n").encode() + body


async def test_body_over_the_limit_is_413_without_being_read(serve_app, settings):
    port = settings.http_port
    # 20 MB announced, nothing sent: answered from the Content-Length at once
    status, _, body = await asyncio.to_thread(_raw, port, _post("/auth/login", 20_000_000))
    assert status == 413
    assert _error(body, "payload_too_large")["details"] == {"limit_bytes": settings.max_body_bytes}
    # chunked (no Content-Length): cut once the received bytes pass the limit
    chunk = b"x" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)) + b"0\r\n\r\n"
    head = b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, _, body = await asyncio.to_thread(_raw, port, head + chunks)
    assert status == 413 and _error(body, "payload_too_large")


async def test_short_body_and_slow_headers_are_cut(serve_app, settings):
    port = settings.http_port
    # a body shorter than announced: the app stops waiting after request_timeout_s
    status, _, body = await asyncio.to_thread(_raw, port, _post("/auth/login", 100, b'{"email":'))
    assert status == 408 and _error(body, "request_timeout")
    # headers that never end: cut by HAProxy's `timeout http-request` (HAProxy 2.8 answers this 408 with its
    # own page: errors of its connection layer ignore custom error pages)
    status, headers, _ = await asyncio.to_thread(_raw, port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
    assert status == 408 and headers["connection"] == "close"


async def test_oversized_header_and_query_get_the_error_format(serve_app, settings):
    port = settings.http_port
    big = "a" * 20_000
    status, headers, body = await asyncio.to_thread(
        _raw, port, f"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n".encode())
    assert status == 431 and headers["content-type"] == "application/json" and _error(body, "headers_too_large")
    status, _, body = await asyncio.to_thread(_raw, port, f"GET /providers?q={big} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 414 and _error(body, "uri_too_long")
    # just under the limit: answered by the API itself
    status, _, body = await asyncio.to_thread(
        _raw, port, f"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {big[:15_000]}\r\n\r\n".encode())
    assert status == 200, body


def _listeners(port: int) -> list[str]:
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
    return [line.split()[3] for line in out.splitlines() if line.strip()]


async def test_haproxy_admin_ports_listen_on_loopback_only(serve_app, settings):
    for port in (settings.haproxy_stats_port, settings.haproxy_metrics_port):
        addrs = _listeners(port)
        assert addrs and all(a.startswith("127.0.0.1:") for a in addrs), (port, addrs)


@pytest.mark.parametrize("field", ["tenant_name", "email"])
async def test_nul_in_registration_is_422(http, field):
    body = {"email": new_email("nul"), "password": PASSWORD, "tenant_name": "acme"}
    body[field] = body[field][:3] + "\x00" + body[field][3:]
    r = await http.post("/auth/register", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["error"]["details"][0]
    assert detail["field"] == field and "NUL" in detail["message"]


async def test_nul_in_login_and_user_email_and_bigint_overflow_are_422(http):
    r = await http.post("/auth/login", json={"email": "a\x00b@example.test", "password": PASSWORD})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "email"
    admin = await signup(http, "nul-tenant")
    r = await http.post("/admin/users", json={"email": "x\x00" + new_email(), "password": PASSWORD}, headers=admin.h)
    assert r.status_code == 422, r.text
    r = await http.get("/admin/audit", params={"after_id": str(2 ** 63)}, headers=admin.h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "after_id"
    r = await http.get("/admin/audit", params={"after_id": str(2 ** 63 - 1)}, headers=admin.h)
    assert r.status_code == 200 and r.json()["items"] == []


def test_a_500_is_logged_once_with_trace_route_and_traceback():
    from fastapi.testclient import TestClient

    from cluster.logs import configure_logging
    from cluster.runtime import Runtime
    from cluster.settings import load_settings
    from deployments.ingress import create_app

    stream = io.StringIO()
    app = create_app(Runtime(load_settings()))

    @app.get("/_t/boom/{item}")
    async def _boom(item: str):
        raise RuntimeError("kaboom")

    with TestClient(app, raise_server_exceptions=False) as c:
        configure_logging("WARNING", stream=stream)
        try:
            r = c.get("/_t/boom/7", headers={"user-agent": "someone@example.com"})
        finally:
            configure_logging("WARNING")
    assert r.status_code == 500
    trace = r.json()["error"]["trace_id"]
    lines = [json.loads(ln) for ln in stream.getvalue().splitlines() if trace in ln]
    assert len(lines) == 1, lines
    assert lines[0]["route"] == "/_t/boom/{item}" and lines[0]["level"] == "ERROR"
    assert "RuntimeError: kaboom" in lines[0]["exc"] and "someone@example.com" not in json.dumps(lines[0])
