"""Foundation: migrations, readiness, the error format, trace propagation, metrics, settings errors."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg
import httpx
import pytest
from pydantic import BaseModel

from cluster.db import apply_migrations, load_migrations
from cluster.settings import SettingsError, load_settings

TRACE = "0af7651916cd43dd8448eb211c80319c"


class _Body(BaseModel):
    name: str


TRACEPARENT = f"00-{TRACE}-b7ad6b7169203331-01"


async def test_migrations_apply_twice(database, settings):
    conn = await asyncpg.connect(database)
    try:
        again = await apply_migrations(conn)
        assert again == []  # nothing pending the second time, and no error
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == [m.version for m in load_migrations()]
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
        for t in ("tenants", "users", "providers", "offers", "price_history", "bookings", "usage_events",
                  "invoices", "audit_log", "outbox", "provider_health"):
            assert t in tables
        uniq = await conn.fetchval(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'offers_provider_external_key'")
        assert uniq == "UNIQUE (provider_id, external_id)"
    finally:
        await conn.close()


async def test_audit_log_refuses_update_and_delete(pg):
    await pg.execute("INSERT INTO audit_log (action, hash_curr) VALUES ('test.append', 'x')")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pg.execute("UPDATE audit_log SET action = 'tampered'")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pg.execute("DELETE FROM audit_log")


async def test_health_and_ready(http):
    r = await http.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = await http.get("/ready")
    assert r.status_code == 200, r.text
    deps = r.json()["dependencies"]
    assert set(deps) == {"postgres", "redis", "nats"}
    assert all(d["status"] == "up" for d in deps.values())


async def test_ready_names_nats_when_unreachable(serve_app, settings):
    """A second app whose settings point NATS at a closed port: /ready is 503 and names NATS."""
    from deployments.app import deploy
    from tests.conftest import free_port

    # a closed port is refused at once; 3 s leaves the first PostgreSQL connection of a new replica time under load
    bad = settings.with_overrides(nats_url=f"nats://127.0.0.1:{free_port()}", readiness_timeout_s=3.0)
    # the ingress alone (/ready lives there): the search, forecast and chat deployments are not what this tests
    await asyncio.to_thread(deploy, bad, "nats-down", "/nats-down", parts=())
    async with httpx.AsyncClient(base_url=serve_app, timeout=15) as c:
        for _ in range(150):  # deploy() does not wait for the proxy to route the new prefix: until then, 404
            r = await c.get("/nats-down/ready")
            if r.status_code != 404:
                break
            await asyncio.sleep(0.2)
    assert r.status_code == 503, r.text
    body = r.json()["error"]
    assert body["code"] == "dependency_unavailable"
    assert r.headers["retry-after"].isdigit()
    assert "nats" in body["message"]
    assert body["details"]["down"] == ["nats"]
    assert body["details"]["dependencies"]["postgres"]["status"] == "up"
    assert body["trace_id"]
    # That 503 was served by the other app's replica (another process); /metrics on this app sums all of them.
    async with httpx.AsyncClient(base_url=serve_app, timeout=15) as c:
        text = (await c.get("/metrics")).text
    assert _sample(text, "gpubroker_http_requests_total", route="/ready", status="503") >= 1


@pytest.mark.parametrize("path,status,code", [("/no-such-route", 404, "not_found")])
async def test_error_format_404_with_propagated_trace(http, path, status, code):
    r = await http.get(path, headers={"traceparent": TRACEPARENT})
    assert r.status_code == status
    err = r.json()["error"]
    assert err["code"] == code and err["trace_id"] == TRACE and err["message"]
    assert r.headers["traceparent"].startswith(f"00-{TRACE}-")
    assert r.headers["x-trace-id"] == TRACE


async def test_error_format_405_and_generated_trace(http):
    r = await http.post("/health")
    assert r.status_code == 405
    err = r.json()["error"]
    assert err["code"] == "method_not_allowed"
    assert len(err["trace_id"]) == 32 and err["trace_id"] != TRACE
    assert r.headers["x-trace-id"] == err["trace_id"]


async def test_invalid_traceparent_gets_new_root(http):
    r = await http.get("/nope", headers={"traceparent": "00-" + "0" * 32 + "-b7ad6b7169203331-01"})
    assert r.json()["error"]["trace_id"] != "0" * 32


def test_error_format_422_and_500_in_process():
    """422 and unhandled-500 through the same app factory and middleware the ingress uses."""
    from fastapi import Query
    from fastapi.testclient import TestClient

    from cluster.runtime import Runtime
    from deployments.ingress import create_app

    app = create_app(Runtime(load_settings()))

    @app.get("/_t/validate")
    async def _validate(page_size: int = Query(ge=1, le=100)):
        return {"page_size": page_size}

    @app.post("/_t/body")
    async def _body(body: _Body):
        return {"name": body.name}

    @app.get("/_t/boom")
    async def _boom():
        raise RuntimeError("kaboom secret")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/_t/validate?page_size=1000", headers={"traceparent": TRACEPARENT})
        assert r.status_code == 422
        err = r.json()["error"]
        assert err["code"] == "validation_error" and err["trace_id"] == TRACE
        assert err["details"][0]["field"] == "page_size" and "page_size" in err["message"]
        r = c.post("/_t/body", content=b"{bad json", headers={"content-type": "application/json"})
        err = r.json()["error"]
        assert r.status_code == 422 and err["details"][0]["field"] == "body"
        assert err["details"][0]["message"].startswith("malformed JSON")
        r = c.post("/_t/body", json=[1, 2])
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body"
        r = c.get("/_t/boom", headers={"traceparent": TRACEPARENT})
        assert r.status_code == 500
        err = r.json()["error"]
        assert err == {"code": "internal_error", "message": "internal server error", "trace_id": TRACE}


def _sample(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_move_after_requests(http):
    before = (await http.get("/metrics")).text
    for _ in range(3):
        await http.get("/health")
    await http.get("/definitely-missing")
    after = (await http.get("/metrics")).text
    assert _sample(after, "gpubroker_http_requests_total", route="/health", status="200") - \
        _sample(before, "gpubroker_http_requests_total", route="/health", status="200") == 3
    assert _sample(after, "gpubroker_http_request_duration_seconds_count", route="/health") - \
        _sample(before, "gpubroker_http_request_duration_seconds_count", route="/health") == 3
    assert _sample(after, "gpubroker_http_errors_total", route="<unmatched>", code="not_found") - \
        _sample(before, "gpubroker_http_errors_total", route="<unmatched>", code="not_found") == 1


async def test_openapi_and_docs(http):
    r = await http.get("/openapi.json")
    assert r.status_code == 200 and "/ready" in r.json()["paths"]
    assert (await http.get("/docs")).status_code == 200


def test_bad_setting_raises_naming_it():
    with pytest.raises(SettingsError, match="GPUBROKER_HTTP_PORT"):
        load_settings({"GPUBROKER_HTTP_PORT": "eighty"})
    with pytest.raises(SettingsError, match="GPUBROKER_DATABASE_URL"):
        load_settings({"GPUBROKER_DATABASE_URL": "mysql://x"})
    with pytest.raises(SettingsError, match="GPUBROKER_LOG_LEVEL"):
        load_settings({"GPUBROKER_LOG_LEVEL": ""})


def test_bad_setting_fails_startup_with_its_name():
    env = dict(os.environ, GPUBROKER_REDIS_URL="http://not-redis")
    p = subprocess.run([sys.executable, "-m", "deployments.cli", "up"], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    lines = [l for l in p.stderr.strip().splitlines() if l]
    assert len(lines) == 1 and "GPUBROKER_REDIS_URL" in lines[0], p.stderr


def test_redact_hides_api_keys_in_urls():
    from cluster.logs import redact

    line = ("GET https://cloudbilling.googleapis.com/v1/services/6F81-5844-456A/skus?key=AIzaSyA-secret_1&"
            "currencyCode=USD and https://x/y?pageSize=5&apikey=k2&X-Amz-Signature=abc123")
    out = redact(line)
    assert "AIzaSyA-secret_1" not in out and "k2" not in out.split("apikey=")[1][:3] and "abc123" not in out
    assert "?key=[redacted]&currencyCode=USD" in out and "pageSize=5" in out


def test_json_logs_carry_trace_id_and_redact():
    import io
    import json as _json

    from fastapi.testclient import TestClient

    from cluster.logs import configure_logging
    from cluster.runtime import Runtime
    from deployments.ingress import create_app

    buf = io.StringIO()
    configure_logging("INFO", stream=buf)
    app = create_app(Runtime(load_settings()))

    @app.get("/_t/leak")
    async def _leak():
        raise ValueError("login failed for alice@example.com password=hunter2 Bearer eyJhbGciOi.eyJzdWIiOi.sig")

    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/_t/leak", headers={"traceparent": TRACEPARENT}).status_code == 500
    lines = [_json.loads(l) for l in buf.getvalue().splitlines() if l.strip()]
    err = [l for l in lines if l["message"] == "unhandled error"]
    assert err and err[0]["trace_id"] == TRACE and err[0]["level"] == "ERROR"
    text = buf.getvalue()
    assert "alice@example.com" not in text and "hunter2" not in text and "eyJhbGciOi" not in text


def test_structured_setting_from_json_env():
    s = load_settings({"GPUBROKER_ADAPTER_BASE_URLS": '{"azure": "http://127.0.0.1:9"}'})
    assert s.adapter_base_urls == {"azure": "http://127.0.0.1:9"}
    with pytest.raises(SettingsError, match="GPUBROKER_ADAPTER_BASE_URLS"):
        load_settings({"GPUBROKER_ADAPTER_BASE_URLS": "{not json"})
