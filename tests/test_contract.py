"""Contract test: schemathesis against the live Serve app, over every operation of its own /openapi.json.

Each operation gets a few generated requests, valid and invalid, without credentials and (operations
that need them) with a tenant admin's token (a new account whenever an operation logged out or erased
the previous one). Every answer must be no 5xx and conform to the document: a declared status, the declared content
type, a body that validates against the declared schema (errors against `ErrorBody`). The document is
read at run time, so routes added later are covered without touching this test. Kept small (a few
examples per operation and mode) so the whole suite stays short and the failed-login counter of the
shared client IP stays far below its limit.
"""
from __future__ import annotations

import secrets
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from tests.auth_fixtures import PASSWORD

EXAMPLES_PER_MODE = 3
MAX_QUERY_BYTES = 8192
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api_schema(serve_app):
    doc = httpx.get(f"{serve_app}/openapi.json", timeout=10).json()
    return schemathesis.openapi.from_dict(doc)


def _operations(schema) -> list:
    ops = [result.ok() for result in schema.get_all_operations()]
    assert len(ops) >= 25, "the document lists the app's operations"
    return ops


def _fresh_admin(base: str) -> dict[str, str]:
    email = f"contract-{secrets.token_hex(6)}@example.test"
    with httpx.Client(base_url=base, timeout=15) as c:
        r = c.post("/auth/register", json={"email": email, "password": PASSWORD, "tenant_name": "contract"})
        assert r.status_code == 201, r.text
        r = c.post("/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _still_valid(base: str, headers: dict[str, str]) -> bool:
    return bool(headers) and httpx.get(f"{base}/auth/me", headers=headers, timeout=10).status_code == 200


def _exercise(operation, base: str, headers: dict[str, str]) -> list[str]:
    failures: list[str] = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def run(case):
            # request lines over 16 KB are refused before the app sees them (documented)
            assume(len(urlencode(case.query or {}, doseq=True)) <= MAX_QUERY_BYTES)
            case.call_and_validate(base_url=base, headers=headers, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            pass  # no invalid request exists for this operation (no parameters, or unconstrained ones)
        except Exception as exc:  # one report per operation and mode, all operations still exercised
            failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:1500]}")
    return failures


@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "authenticated"])
def test_every_operation_conforms(serve_app, api_schema, authenticated):
    failures: list[str] = []
    headers: dict[str, str] = {}
    for operation in _operations(api_schema):
        secured = "security" in operation.definition.raw
        if authenticated and not secured:
            continue  # a public operation answers the same with or without credentials
        if authenticated and not _still_valid(serve_app, headers):
            headers = _fresh_admin(serve_app)  # the previous operation logged out or erased the caller
        failures += _exercise(operation, serve_app, headers)
    assert failures == [], "\n\n".join(failures)


def test_oversized_request_line_is_refused_by_the_server(serve_app):
    """A query over the 16 KB limit (documented in the description) is refused in the error format."""
    r = httpx.get(f"{serve_app}/providers", params={"q": "x" * 20000}, timeout=10)
    assert r.status_code == 414, r.status_code
    assert r.json()["error"]["code"] == "uri_too_long"
