"""API key rules (domain.api_keys): the key's form, its stored hash, what lists show, and which roles a caller may
grant (no wider than its own)."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from domain.api_keys import ApiKeyIn, display_prefix, grantable, is_api_key, key_hash, new_key
from domain.models import Role


def test_new_keys_are_prefixed_and_carry_256_random_bits():
    a, b = new_key(), new_key()
    assert a.startswith("gpb_") and len(a) == 4 + 43 and a != b
    assert is_api_key(a) and not is_api_key("eyJhbGciOi.jwt") and not is_api_key("xgpb_")


def test_key_hash_is_sha256_hex_of_the_key():
    assert key_hash("gpb_abc") == hashlib.sha256(b"gpb_abc").hexdigest()


def test_display_prefix_is_the_prefix_and_six_characters():
    assert display_prefix("gpb_Xk3q9Z0v4cJ8") == "gpb_Xk3q9Z"


@pytest.mark.parametrize("key_role, caller, ok", [
    (Role.admin, Role.admin, True), (Role.user, Role.admin, True), (Role.manager, Role.admin, True),
    (Role.user, Role.manager, True), (Role.manager, Role.manager, True), (Role.admin, Role.manager, False),
    (Role.auditor, Role.manager, False),   # audit.read is not the manager's
    (Role.user, Role.auditor, False),      # chat and bookings.write are not the auditor's
    (Role.manager, Role.user, False), ("user", "user", True), ("user", "nobody", False),
])
def test_a_caller_grants_only_roles_within_its_own_permissions(key_role, caller, ok):
    assert grantable(key_role, caller) is ok


def test_expiry_must_be_in_the_future_and_naive_is_utc():
    soon = datetime.now(timezone.utc) + timedelta(days=1)
    assert ApiKeyIn(name="k", expires_at=soon.replace(tzinfo=None)).expires_at == soon
    assert ApiKeyIn(name="k").expires_at is None
    with pytest.raises(ValidationError, match="must be in the future"):
        ApiKeyIn(name="k", expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
