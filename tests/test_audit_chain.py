"""The audit chain rule itself (SEC-AUDIT-1): known-answer hashes, and a splice that only the rule catches.

The other audit tests compute their expected hashes with `chain_hash`, so they cannot notice a change to the
rule; these pin it from outside: fixed bytes in, fixed digests out.
"""
from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone

from domain.audit import GENESIS, canonical, chain_hash, verify_chain

ENTRY = {"tenant_id": "t1", "user_id": "00000000-0000-0000-0000-000000000000", "action": "x.y",
         "target_type": "tenant", "target_id": "t1", "ip": "10.0.0.0", "user_agent": "ua",
         "ts": datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=timezone.utc), "details": {"b": 1, "a": [1.5, "z"]}}
PREV = "ab" * 32
# sha256(hash_prev as ASCII || canonical JSON of the entry), computed outside Python with `printf ... | sha256sum`
# over the 64 characters of hash_prev followed by the canonical bytes pinned in test_canonical_form_is_fixed.
HASH_AFTER_GENESIS = "877ea2592099f749f1edc4be1a1bcb14916a6cf8e4167e7bac835fdbffd7b5a1"
HASH_AFTER_PREV = "551fb6c40021eed95310b7c94c6b53286b72273c4e63a26ac0c7a25a7e5e8241"


def test_chain_hash_known_answers():
    assert chain_hash(GENESIS, ENTRY) == HASH_AFTER_GENESIS
    assert chain_hash(None, ENTRY) == HASH_AFTER_GENESIS  # a first entry links to GENESIS
    assert chain_hash(PREV, ENTRY) == HASH_AFTER_PREV  # the predecessor is part of the hash
    assert hashlib.sha256(PREV.encode("ascii") + canonical(ENTRY)).hexdigest() == HASH_AFTER_PREV


def _chain(n: int) -> list[dict]:
    out, prev = [], GENESIS
    for i in range(n):
        e = dict(ENTRY, id=i + 1, user_id=str(uuid.UUID(int=i)), ts=ENTRY["ts"].replace(second=i))
        e["hash_prev"] = prev
        e["hash_curr"] = prev = chain_hash(prev, e)
        out.append(e)
    return out


def test_splice_that_repoints_hash_prev_is_found():
    """Delete an entry and re-point the next one's hash_prev at the entry before it, leaving its hash_curr: the
    links line up, so only a hash that covers hash_prev tells."""
    es = _chain(5)
    assert verify_chain(es) == (5, None)
    spliced = [es[0], dict(es[2], hash_prev=es[0]["hash_curr"]), es[3], es[4]]
    n, broken = verify_chain(spliced)
    assert (n, broken.entry_id) == (2, 3)
    assert broken.reason == "hash_curr does not match the entry's content"


async def test_splice_in_the_database_is_found_by_verify(pg):
    """The same splice on stored rows, by someone who bypasses the append-only trigger."""
    from cluster.audit import append_audit, verify_audit

    tenant = await pg.fetchval("INSERT INTO tenants (name) VALUES ('splice') RETURNING id")
    for i in range(4):
        async with pg.acquire() as conn, conn.transaction():
            await append_audit(conn, tenant, None, "test.splice", "n", i)
    rows = await pg.fetch("SELECT id, hash_curr FROM audit_log WHERE tenant_id = $1 ORDER BY id", tenant)
    assert (await verify_audit(pg, tenant))["ok"] is True
    async with pg.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
        await conn.execute("DELETE FROM audit_log WHERE id = $1", rows[1]["id"])
        await conn.execute("UPDATE audit_log SET hash_prev = $1 WHERE id = $2", rows[0]["hash_curr"], rows[2]["id"])
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update")
    report = await verify_audit(pg, tenant)
    assert report["ok"] is False
    assert report["first_broken"] == {"tenant_id": str(tenant), "entry_id": rows[2]["id"],
                                      "reason": "hash_curr does not match the entry's content"}
