"""The OpenAPI document tells the truth about its routes: error model, security, tags, examples.

Built from the real app (`create_app`) without serving it; the contract test (`test_contract.py`)
checks the live answers against the same document.
"""
from __future__ import annotations

import re
from types import SimpleNamespace

import jsonschema
import pytest

from cluster.settings import load_settings
from deployments.ingress import create_app


@pytest.fixture(scope="module")
def doc():
    return create_app(SimpleNamespace(settings=load_settings())).openapi()


def _operations(doc):
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield path, method, op


def _resolve(doc, schema):
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _example(doc, media):
    if "example" in media:
        return media["example"]
    if media.get("examples"):
        return next(iter(media["examples"].values()))["value"]
    schema = _resolve(doc, media.get("schema", {}))
    for branch in schema.get("anyOf", []):  # a union: each branch carries its example
        schema = _resolve(doc, branch)
        break
    examples = schema.get("examples")
    return examples[0] if examples else None


def test_every_error_is_the_error_model(doc):
    text = str(doc)
    assert "HTTPValidationError" not in text and "ValidationError" not in doc["components"]["schemas"]
    for path, method, op in _operations(doc):
        for status, resp in op["responses"].items():
            if status[0] in "45":
                assert resp["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}, \
                    (method, path, status)
    detail = doc["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"code", "message", "trace_id"} and "details" in detail["properties"]


def test_statuses_each_route_can_answer(doc):
    for path, method, op in _operations(doc):
        statuses = set(op["responses"])
        has_input = bool(op.get("parameters") or op.get("requestBody"))
        assert ("422" in statuses) == has_input, (method, path)
        assert ("403" in statuses) == ("security" in op), (method, path)
        assert "security" not in op or "401" in statuses, (method, path)
        if path not in ("/health", "/ready", "/metrics"):
            assert "429" in statuses, (method, path)
        if "{" in path and path.startswith(("/providers/", "/admin/")):
            assert "404" in statuses, (method, path)


def test_security_schemes_and_secured_routes(doc):
    schemes = doc["components"]["securitySchemes"]
    assert schemes["accessToken"] == {**schemes["accessToken"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "http", "scheme": "bearer"}
    assert all(op["security"] == [{"accessToken": []}, {"apiKey": []}] for p, m, op in _operations(doc)
               if "security" in op)
    secured = {(m, p) for p, m, op in _operations(doc) if "security" in op}
    assert ("get", "/auth/me") in secured and ("get", "/admin/audit") in secured
    assert not any(p.startswith(("/providers", "/prices", "/health")) for _, p in secured)
    assert ("post", "/auth/login") not in secured


def test_every_route_has_a_response_model_and_an_example(doc):
    for path, method, op in _operations(doc):
        ok = [s for s in op["responses"] if s.startswith("2")]
        assert len(ok) == 1, (method, path)
        resp = op["responses"][ok[0]]
        if ok[0] == "204":
            assert "content" not in resp
            continue
        for media_type, media in resp["content"].items():
            schema = _resolve(doc, media["schema"])
            assert schema.get("type") != "object" or schema.get("properties"), (method, path, "untyped object")
            example = _example(doc, media)
            assert example is not None, (method, path, media_type)
            if media_type == "application/json":
                jsonschema.validate(example, {**media["schema"], "components": doc["components"]})


def test_tags_and_description_name_only_what_exists(doc):
    described = {t["name"] for t in doc["tags"] if t.get("description")}
    used = {t for _, _, op in _operations(doc) for t in op.get("tags", [])}
    assert used <= described
    words = " ".join(doc["paths"])
    for feature, route_word in (("booking", "booking"), ("chat", "chat"), ("forecast", "predict")):
        if re.search(feature, doc["info"]["description"], re.I):
            assert route_word in words, f"the description names {feature}, which has no route"
