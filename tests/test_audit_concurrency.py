"""The audit hash chain under concurrent appends: every isolation level, through storage and through the
GDPR export route (whose REPEATABLE READ transaction once forked the chain)."""
from __future__ import annotations

import asyncio
import random
import uuid

import asyncpg
import pytest

from cluster.audit import append_audit, verify_audit
from tests.auth_fixtures import signup


@pytest.mark.parametrize("isolation", ["read_committed", "repeatable_read", "serializable"])
async def test_concurrent_appends_never_fork(database, settings, isolation):
    from cluster.db import create_pool

    tenant = uuid.uuid4()
    pool = await create_pool(settings, min_size=1, max_size=10)
    retried = 0

    async def one(i: int) -> None:
        nonlocal retried
        while True:  # the retry every caller of a REPEATABLE READ / SERIALIZABLE transaction owes
            try:
                async with pool.acquire() as conn, conn.transaction(isolation=isolation):
                    # the snapshot is taken here, before the append (as in the export route)
                    await conn.fetchval("SELECT count(*) FROM audit_log WHERE tenant_id = $1", tenant)
                    await asyncio.sleep(random.uniform(0, 0.02))
                    await append_audit(conn, tenant, None, "test.concurrent", details={"i": i})
                return
            except asyncpg.SerializationError:
                retried += 1
                await asyncio.sleep(random.uniform(0.001, 0.01))

    try:
        await append_audit_once(pool, tenant)  # the chain exists before the race
        await asyncio.gather(*(one(i) for i in range(8)))
        result = await verify_audit(pool, tenant)
        rows = await pool.fetch("SELECT hash_prev FROM audit_log WHERE tenant_id = $1 ORDER BY id", tenant)
    finally:
        await pool.close()
    assert result["ok"] is True, result
    assert result["entries_checked"] == 9
    prevs = [r["hash_prev"] for r in rows]
    assert len(set(prevs)) == len(prevs)  # no two entries share a predecessor
    if isolation == "read_committed":
        assert retried == 0  # READ COMMITTED waits for the head instead of failing


async def test_a_burst_of_appends_on_a_new_chain_links_every_entry_once(database, settings):
    """100 appends at once from 16 connections, the first ones racing to create the chain's head: one
    chain, each entry linked to the one before, the head on the last."""
    from cluster.db import create_pool

    tenant = uuid.uuid4()
    pool = await create_pool(settings, min_size=16, max_size=16)

    async def one(i: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await append_audit(conn, tenant, None, "test.burst", "booking", uuid.uuid4(), details={"i": i})

    try:
        await asyncio.gather(*(one(i) for i in range(100)))
        result = await verify_audit(pool, tenant)
        rows = await pool.fetch("SELECT id, hash_prev, hash_curr FROM audit_log WHERE tenant_id = $1 ORDER BY id", tenant)
        head = await pool.fetchrow("SELECT last_id, hash_curr FROM audit_chain_heads WHERE chain = $1", str(tenant))
    finally:
        await pool.close()
    assert result["ok"] is True and result["entries_checked"] == 100, result
    assert rows[0]["hash_prev"] is None
    assert [r["hash_prev"] for r in rows[1:]] == [r["hash_curr"] for r in rows[:-1]]
    assert (head["last_id"], head["hash_curr"]) == (rows[-1]["id"], rows[-1]["hash_curr"])


async def append_audit_once(pool, tenant) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await append_audit(conn, tenant, None, "test.first")


async def test_run_transaction_retries_serialization_failures(database, settings):
    from cluster.db import create_pool, run_transaction

    tenant = uuid.uuid4()
    pool = await create_pool(settings, min_size=1, max_size=10)
    tries = []

    async def work(conn):
        tries.append(1)
        await conn.fetchval("SELECT count(*) FROM audit_log WHERE tenant_id = $1", tenant)
        await asyncio.sleep(random.uniform(0, 0.02))
        return (await append_audit(conn, tenant, None, "test.retried"))["id"]

    try:
        await append_audit_once(pool, tenant)
        ids = await asyncio.gather(*(run_transaction(pool, work, isolation="serializable") for _ in range(6)))
        result = await verify_audit(pool, tenant)
    finally:
        await pool.close()
    assert len(set(ids)) == 6 and result["ok"] is True and result["entries_checked"] == 7
    assert len(tries) > 6  # some of them were aborted by a concurrent append and ran again


async def test_parallel_gdpr_exports_keep_the_chain(http, pg):
    a = await signup(http, "export-race")
    rs = await asyncio.gather(*(http.get("/data-request", headers=a.h) for _ in range(6)))
    assert [r.status_code for r in rs] == [200] * 6, [r.text for r in rs if r.status_code != 200]
    v = await http.get("/admin/audit/verify", headers=a.h)
    assert v.status_code == 200 and v.json()["ok"] is True, v.text
    assert await pg.fetchval("SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'data.exported'",
                             uuid.UUID(a.tenant_id)) == 6
