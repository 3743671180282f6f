"""A bad-input sweep over every route of the OpenAPI document: no hostile input may reach a 5xx.

For each operation, each of its inputs (path and query parameters, JSON body fields) is replaced in turn by
a hostile value (NUL bytes, overlong strings, integers past bigint, wrong types, unknown fields) while the
others keep plausible values, so that the bad value is what reaches the handler; plus malformed, huge and
deeply nested bodies. Every answer must be below 500 and, when an error, in the error format.
"""
from __future__ import annotations

import json
import uuid
from urllib.parse import quote
from typing import Any

import httpx
import pytest

from tests.auth_fixtures import PASSWORD, new_email, signup

HOSTILE_STRINGS = ["a\x00b", "\x00", "x" * 20_000, "é\u2028\ud7ff", "' OR 1=1 --", "../../etc/passwd"]
HOSTILE_NUMBERS = [2 ** 63, -(2 ** 63) - 1, 10 ** 40, -1, 1e308, "NaN", "12abc"]
HOSTILE_TYPES = [None, [], {}, True, {"$gt": ""}, ["x"] * 1000]
# routes whose plain call (no input to corrupt) would end the session the sweep uses
SKIP_PLAIN = {("POST", "/auth/logout")}


def _resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [_resolve(doc, s) for s in schema[key] if s.get("type") != "null"]
            if options:
                return options[0]
    return schema


def _plausible(doc: dict, name: str, schema: dict) -> Any:
    schema = _resolve(doc, schema)
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return max(1.0, schema.get("minimum", 1.0))
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object":
        return {k: _plausible(doc, k, s) for k, s in (schema.get("properties") or {}).items()}
    if schema.get("format") == "uuid" or name.endswith("_id") or name == "id":
        return str(uuid.uuid4())
    if "email" in name:
        return new_email("sweep")
    if "password" in name:
        return PASSWORD
    pattern = schema.get("pattern", "")
    if pattern == r"^\d{6}$":
        return "123456"
    if pattern == r"^[A-Z]{3}$":
        return "USD"
    return "sweep"


def _hostile() -> list[Any]:
    return HOSTILE_STRINGS + HOSTILE_NUMBERS + HOSTILE_TYPES


def _requests(doc: dict) -> list[tuple[str, str, dict]]:
    """(method, url, httpx kwargs) for every operation and every hostile variant of its inputs."""
    out: list[tuple[str, str, dict]] = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            method = method.upper()
            params = [_resolve(doc, p) for p in op.get("parameters", [])]
            path_params = {p["name"]: _plausible(doc, p["name"], p.get("schema", {})) for p in params if p["in"] == "path"}
            query = {p["name"]: _plausible(doc, p["name"], p.get("schema", {})) for p in params if p["in"] == "query"}
            body_schema = (((op.get("requestBody") or {}).get("content") or {}).get("application/json") or {}).get("schema")
            body = _plausible(doc, "body", body_schema) if body_schema else None

            def url(pp: dict) -> str:
                u = path
                for k, v in pp.items():
                    raw = str(v)
                    u = u.replace("{" + k + "}", raw if raw.startswith("%") else quote(raw, safe=""))
                return u

            for k in path_params:
                for bad in HOSTILE_STRINGS[:3] + ["9223372036854775808", "-1", "%00"]:
                    out.append((method, url({**path_params, k: bad}), {"params": query, "json": body}))
            for k in query:
                for bad in _hostile():
                    v = json.dumps(bad) if isinstance(bad, (list, dict)) or bad is None else bad
                    out.append((method, url(path_params), {"params": {**query, k: str(v)}, "json": body}))
            if isinstance(body, dict):
                props = _resolve(doc, body_schema).get("properties") or {}
                for k in props:
                    for bad in _hostile():
                        out.append((method, url(path_params), {"params": query, "json": {**body, k: bad}}))
                out.append((method, url(path_params), {"params": query, "json": {**body, "unknown_field": 1}}))
            if body_schema is not None:
                for raw in (b"{", b"\x00\xff", b"[" * 5000 + b"]" * 5000, b'{"a":' + b"1" * 2_000_000 + b"}"):
                    out.append((method, url(path_params), {"params": query, "content": raw,
                                                           "headers": {"content-type": "application/json"}}))
                out.append((method, url(path_params), {"params": query, "content": b"a=b",
                                                       "headers": {"content-type": "application/x-www-form-urlencoded"}}))
            if not path_params and not query and body_schema is None and (method, path) not in SKIP_PLAIN:
                out.append((method, path, {"params": {"unexpected": "\x00" * 3}}))
    return out


@pytest.mark.timeout(600)
async def test_no_hostile_input_reaches_a_5xx(http, pg, settings):
    admin = await signup(http, "sweep")
    # the sweep sends many requests: lift the tenant's plan limits so they reach the routes, not the limiter
    await pg.execute("UPDATE tenants SET rate_limit_rps = 100000, burst = 100000 WHERE id = $1::uuid", admin.tenant_id)
    doc = (await http.get("/openapi.json")).json()
    requests = _requests(doc)
    assert len(requests) > 500  # every route is covered, not a handful
    failures, answered = [], 0
    for method, url, kw in requests:
        for headers in (admin.h, {}):
            if headers is admin.h and (method, url) in SKIP_PLAIN:
                continue
            kw2 = {**kw, "headers": {**(kw.get("headers") or {}), **headers}}
            if kw2.get("json") is None:
                kw2.pop("json", None)
            try:
                try:
                    r = await http.request(method, url, **kw2)
                except (httpx.RemoteProtocolError, httpx.ReadError):  # a pooled keep-alive connection closed as it was reused
                    r = await http.request(method, url, **kw2)
            except httpx.TransportError as exc:
                # a body over the limit is answered 413 and the connection closed while the client may still
                # be sending it; anything else without an answer is a failure
                if len(kw.get("content") or b"") <= settings.max_body_bytes:
                    failures.append(f"{method} {url} {str(kw)[:200]} -> {type(exc).__name__}")
                continue
            answered += r.status_code != 429
            if r.status_code >= 500:
                failures.append(f"{method} {url} {str(kw)[:200]} -> {r.status_code} {r.text[:200]}")
            elif r.status_code >= 400:
                assert "error" in r.json() and r.json()["error"]["trace_id"], (method, url, r.text[:300])
    assert failures == []
    assert answered > len(requests)  # the routes answered, not only the rate limiter
