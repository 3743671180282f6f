"""Pure logic of identity: password policy, the audit hash chain, the token bucket, the permission table."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from domain.audit import GENESIS, anonymize_ip, canonical, chain_hash, verify_chain
from domain.models import Role
from domain.passwords import DUMMY_HASH, PasswordPolicy, WeakPassword
from domain.permissions import P, ROLE_PERMISSIONS, allowed
from domain.ratelimit import TokenBucket, retry_after_header


def test_password_hash_is_argon2id_and_verifies():
    pol = PasswordPolicy()
    h = pol.hash("a long enough secret")
    assert h.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert pol.verify(h, "a long enough secret")
    assert not pol.verify(h, "a long enough secreT")
    assert not pol.verify("!", "anything")  # erased account: unusable hash, no exception
    assert not pol.verify(DUMMY_HASH, "")


@pytest.mark.parametrize("pw,msg", [("short", "at least 12"), ("a" * 300, "at most 256"), ("aaaaaaaaaaaaab", "distinct")])
def test_weak_passwords_rejected(pw, msg):
    with pytest.raises(WeakPassword, match=msg):
        PasswordPolicy().check(pw)


def _entries(n, tenant="t1"):
    out, prev = [], GENESIS
    for i in range(n):
        e = {"id": i + 1, "tenant_id": tenant, "user_id": str(uuid.UUID(int=i)), "action": "x.y",
             "target_type": "tenant", "target_id": tenant, "ip": "10.0.0.0", "user_agent": "ua",
             "ts": datetime(2026, 1, 1, 0, 0, i, 123456, tzinfo=timezone.utc), "details": {"b": 1, "a": [1.5, "z"]}}
        e["hash_prev"] = prev
        e["hash_curr"] = prev = chain_hash(prev, e)
        out.append(e)
    return out


def test_canonical_form_is_fixed():
    e = _entries(1)[0]
    assert canonical(e) == (
        b'{"action":"x.y","details":{"a":["1.5","z"],"b":1},"ip":"10.0.0.0","target_id":"t1",'
        b'"target_type":"tenant","tenant_id":"t1","ts":"2026-01-01T00:00:00.123456+00:00","user_agent":"ua",'
        b'"user_id":"00000000-0000-0000-0000-000000000000"}')
    # key order of details and the timestamp's zone do not change the hash
    e2 = dict(e, details={"a": [1.5, "z"], "b": 1})
    assert chain_hash(GENESIS, e2) == e["hash_curr"]


def test_verify_chain_finds_first_broken_link():
    es = _entries(5)
    assert verify_chain(es) == (5, None)
    es[2]["details"] = {"b": 2}
    n, broken = verify_chain(es)
    assert (n, broken.entry_id) == (3, 3) and "content" in broken.reason
    es = _entries(5)
    del es[1]  # a removed row breaks the next link
    n, broken = verify_chain(es)
    assert broken.entry_id == 3 and "hash_prev" in broken.reason


def test_anonymize_ip():
    assert anonymize_ip("192.168.7.42") == "192.168.7.0"
    assert anonymize_ip("2001:db8:1:2::5") == "2001:db8:1::"
    assert anonymize_ip("not-an-ip") is None


def test_token_bucket():
    b = TokenBucket.full(rate=10, burst=5, now=0.0)
    assert [b.take(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert b.wait_s(0.0) == pytest.approx(0.1)
    assert b.take(0.1)
    assert b.grant(1.0, 100) == 5  # capped at burst
    assert b.grant(1.0, 3) == 0
    assert retry_after_header(0.01) == "1" and retry_after_header(2.2) == "3"
    b.reconfigure(1, 2, now=10.0)
    assert b.tokens == 2 and b.grant(10.0, 9) == 2


def test_token_bucket_lease_reserves_ahead_within_its_debt_cap():
    b = TokenBucket.full(rate=10, burst=20, now=0.0)
    first = b.lease(0.0, 15, debt_cap=10)
    assert (first.granted, first.before, first.wait_s) == (15, 20.0, 0.0)
    second = b.lease(0.0, 15, debt_cap=10)  # 5 there, 10 reserved ahead (earned over the next second)
    assert (second.granted, second.before) == (15, 5.0) and b.tokens == -10
    none = b.lease(0.0, 4, debt_cap=10)
    assert none.granted == 0 and none.wait_s == pytest.approx(0.4)
    assert b.lease(1.5, 4, debt_cap=10).granted == 4  # 15 earned since: 5 + debt room


def test_permission_table():
    assert set(ROLE_PERMISSIONS) == set(Role)
    assert allowed("admin", P.TENANTS_MANAGE)
    assert not allowed("user", P.AUDIT_READ)
    assert allowed("auditor", P.AUDIT_VERIFY) and not allowed("auditor", P.BOOKINGS_WRITE)
    assert not allowed("manager", P.USERS_MANAGE)
    assert not allowed("root", P.SELF)
    assert all(P.SELF in perms for perms in ROLE_PERMISSIONS.values())
