"""Bookings storage under concurrency: a change is one statement (booking row, transition row, outbox row,
audit entry), so every booking written has all four, none is written twice, and the tenant's audit chain
stays one unforked chain, also when the chain has no head yet."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from cluster.audit import verify_audit
from cluster.db import create_pool
from cluster.repositories import bookings as repo
from domain.audit import now_utc
from domain.bookings import request_fingerprint
from domain.models import BookingState as S
from tests.booking_fixtures import ingest_sandbox


@pytest.fixture()
async def fresh(settings, database):
    """A pool of 16 and a tenant made without any audit entry (its chain has no head)."""
    pool = await create_pool(settings, min_size=16, max_size=16)
    offers = await ingest_sandbox(settings, pool)
    tenant = await pool.fetchval("INSERT INTO tenants (name) VALUES ('storage') RETURNING id")
    user = await pool.fetchval("INSERT INTO users (tenant_id, email, password_hash) VALUES ($1, $2, 'x') RETURNING id",
                               tenant, f"storage-{uuid.uuid4().hex[:8]}@example.test")
    offer = await repo.offer_for_booking(pool, uuid.UUID(offers["sbx-4090x1-use1"]))
    yield {"pool": pool, "tenant": tenant, "user": user, "offer": offer}
    await pool.close()


async def _create(settings, f: dict, key: str | None):
    async with f["pool"].acquire() as conn:
        start = now_utc()
        return await repo.create(conn, settings, tenant_id=f["tenant"], user_id=f["user"], offer=f["offer"],
                                 start=start, end=start + timedelta(hours=1), idempotency_key=key,
                                 request_hash=request_fingerprint({}), trace_id=None)


async def test_concurrent_drafts_of_a_headless_chain_each_write_row_transition_outbox_and_one_link(settings, fresh):
    pool, tenant = fresh["pool"], fresh["tenant"]
    assert await pool.fetchval("SELECT count(*) FROM audit_chain_heads WHERE chain = $1", str(tenant)) == 0
    made = await asyncio.gather(*(_create(settings, fresh, None) for _ in range(40)),
                                *(_create(settings, fresh, "same-key") for _ in range(10)))
    rows = [r for r, _ in made if r is not None]
    assert len(rows) == 41 and sum(r is None for r, _ in made) == 9  # one per key
    ids = [r["id"] for r in rows]
    assert await pool.fetchval("SELECT count(*) FROM bookings WHERE tenant_id = $1", tenant) == 41
    transitions = await pool.fetch("SELECT booking_id, version, to_state FROM booking_transitions "
                                   "WHERE booking_id = ANY($1::uuid[])", ids)
    assert sorted((t["version"], t["to_state"]) for t in transitions) == [(0, "Draft")] * 41
    wanted = [f"{repo.msg_prefix(settings)}{i}:{v}" for i in ids for v in (0, 1)]
    outbox = await pool.fetch("SELECT msg_id, payload FROM outbox WHERE msg_id = ANY($1::text[])", wanted)
    assert sorted(o["msg_id"] for o in outbox) == sorted(f"{repo.msg_prefix(settings)}{i}:0" for i in ids)
    assert {o["payload"]["state"] for o in outbox} == {"Draft"}
    audit = await pool.fetch("SELECT target_id, details FROM audit_log WHERE tenant_id = $1 ORDER BY id", tenant)
    assert sorted(a["target_id"] for a in audit) == sorted(str(i) for i in ids)
    result = await verify_audit(pool, tenant)
    assert result["ok"] is True and result["entries_checked"] == 41, result


async def test_racing_transitions_of_one_booking_apply_once_with_one_audit_entry(settings, fresh):
    pool = fresh["pool"]
    draft, _ = await _create(settings, fresh, None)

    async def move(to: S):
        async with pool.acquire() as conn:
            return await repo.transition(conn, settings, draft, to, source="test")

    outs = await asyncio.gather(*(move(S.pending_provision) for _ in range(5)), *(move(S.cancelled) for _ in range(5)),
                                return_exceptions=True)
    won = [o for o in outs if not isinstance(o, BaseException)]
    assert len(won) == 1 and all(isinstance(o, repo.VersionConflict) for o in outs if o not in won)
    row = await repo.get(pool, draft["id"])
    assert row["version"] == 1 and row["status"] == won[0][0]["status"]
    steps = await repo.transitions(pool, draft["id"])
    assert [(t["version"], t["to_state"]) for t in steps] == [(0, "Draft"), (1, row["status"])]
    audit = await pool.fetch("SELECT details FROM audit_log WHERE target_id = $1 ORDER BY id", str(draft["id"]))
    assert [(a["details"]["from"], a["details"]["to"]) for a in audit] == [(None, "Draft"), ("Draft", row["status"])]
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE msg_id LIKE $1", f"%{draft['id']}:%") == 2
    assert (await verify_audit(pool, fresh["tenant"]))["ok"] is True
