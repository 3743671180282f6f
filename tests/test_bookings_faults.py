"""Bookings under faults: the provisioning timeout, a killed booking actor, the whole Ray runtime
restarted, NATS stopped. Each loses and duplicates nothing.

The timeout, NATS and Ray-restart tests run their booking hosts on a database of their own, so hosts
started here never adopt the test session's bookings (and the session's hosts never adopt theirs).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import nats
import pytest
import ray

from actors.booking_host import NAMESPACE, BookingHost, host_name, shard_of
from cluster.db import create_pool, migrate
from cluster.messaging import ensure_streams, subject
from cluster.repositories import bookings as repo
from domain.audit import now_utc
from domain.bookings import request_fingerprint
from tests.booking_fixtures import stream_messages, book, booking_hosts, ingest_sandbox, sandbox_offers, tenants, wait_state  # noqa: F401
from tests.conftest import drop_database, free_port

UNREACHABLE = "http://127.0.0.1:9"  # webhooks lost on purpose: only status polls can move the booking
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
async def private(settings, database):
    """A database of this module's own: migrated, the sandbox catalog, one tenant and user."""
    s = settings.with_overrides(database_url=f"{settings.database_url}_faults", booking_webhook_url=UNREACHABLE,
                                booking_status_poll_s=0.3, sandbox_delay_s=0.3)
    await migrate(s)
    pool = await create_pool(s, min_size=1, max_size=4)
    offers = await ingest_sandbox(s, pool)
    tenant = await pool.fetchval("INSERT INTO tenants (name) VALUES ('faults') RETURNING id")
    user = await pool.fetchval("INSERT INTO users (tenant_id, email, password_hash) VALUES ($1, $2, 'x') RETURNING id",
                               tenant, f"faults-{uuid.uuid4().hex[:8]}@example.test")
    yield {"settings": s, "pool": pool, "offers": offers, "tenant": tenant, "user": user}
    await pool.close()
    await drop_database(s)


async def _draft(p: dict, offer_ext: str, settings=None):
    """A Draft booking as POST /bookings writes it (row, transition, audit entry, outbox event)."""
    s = settings or p["settings"]
    async with p["pool"].acquire() as conn, conn.transaction():
        offer = await repo.offer_for_booking(conn, uuid.UUID(p["offers"][offer_ext]))
        start = now_utc()
        return await repo.create(conn, s, tenant_id=p["tenant"], user_id=p["user"], offer=offer, start=start,
                                 end=start + timedelta(hours=1),
                                 idempotency_key=None, request_hash=request_fingerprint({}), trace_id=None)


async def _until(fn, timeout: float = 20.0, step: float = 0.2):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    value = None
    while loop.time() < end:
        value = await fn()
        if value:
            return value
        await asyncio.sleep(step)
    return value


async def _states(pool, booking_id) -> list[tuple]:
    rows = await pool.fetch("SELECT version, from_state, to_state, source FROM booking_transitions WHERE booking_id = $1 "
                            "ORDER BY version", booking_id)
    return [tuple(r) for r in rows]




async def test_pending_provision_times_out_to_failed(private):
    s = private["settings"].with_overrides(booking_provision_timeout_s=1.5)
    host = BookingHost(s, 0, 1, adopt=False)
    try:
        await host.ready()
        row, ev = await _draft(private, "sbx-h100x1-never")
        assert (await host.submit(str(row["id"]), ev))["state"] == "PendingProvision"

        async def failed():
            await host.tick()
            r = await repo.get(private["pool"], row["id"])
            return r if r["status"] == "Failed" else None

        r = await _until(failed, 15)
        assert r is not None and r["last_error"] == "provisioning timed out after 1.5 s"
        steps = await _states(private["pool"], row["id"])
        assert steps[-1] == (2, "PendingProvision", "Failed", "timeout") and len(steps) == 3
        assert (await host.stats())["live"] == 0  # a finished booking leaves its host
    finally:
        await host.close()


async def test_nats_stopped_events_wait_in_the_outbox_and_arrive_after(private, tmp_path):
    port = free_port()
    cmd = [shutil.which("nats-server") or "nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s = private["settings"].with_overrides(nats_url=f"nats://127.0.0.1:{port}")
    host = None
    try:
        nc = await _until(lambda: _connect(port), 10)
        await ensure_streams(s, nc.jetstream())
        await nc.close()
        host = BookingHost(s, 0, 1, adopt=True)  # shard 0 of 1: it also relays the outbox
        await host.ready()
        proc.terminate()
        proc.wait(10)
        row, ev = await _draft(private, "sbx-4090x1-use1", s)
        await host.submit(str(row["id"]), ev)
        prefix = f"{repo.msg_prefix(s)}{row['id']}:%"

        async def active():
            r = await repo.get(private["pool"], row["id"])
            return r["status"] == "Active"

        assert await _until(active, 20)
        unpublished = lambda: private["pool"].fetchval(  # noqa: E731
            "SELECT count(*) FROM outbox WHERE msg_id LIKE $1 AND published_at IS NULL", prefix)
        assert await _until(lambda: _eq(unpublished(), 3), 10) is True  # every event waits in the outbox
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # NATS is back
        assert await _until(lambda: _eq(unpublished(), 0), 30) is True
        nc = await _until(lambda: _connect(port), 10)
        msgs = await stream_messages(nc, subject(s, "bookings", str(private["tenant"]), str(row["id"])))
        await nc.close()
        # all three, once each; across an outage the order is the booking_version's, not the arrival's
        assert len(msgs) == 3 and len({m["msg_id"] for m in msgs}) == 3
        assert [m["state"] for m in sorted(msgs, key=lambda m: m["booking_version"])] == [
            "Draft", "PendingProvision", "Active"]
    finally:
        if host is not None:
            await host.close()
        proc.terminate()
        proc.wait(10)


async def _connect(port: int):
    try:
        return await nats.connect(f"nats://127.0.0.1:{port}", connect_timeout=1, max_reconnect_attempts=0)
    except Exception:
        return None


async def _eq(aw, expected) -> bool:
    return (await aw) == expected


async def test_killing_a_booking_actor_mid_provisioning_loses_and_duplicates_nothing(
        http, tenants, sandbox_offers, settings, pg, nats_client):
    a = tenants["a"]
    bk = (await book(http, a, sandbox_offers["sbx-h100x1-slow"])).json()  # the sandbox answers after 5 s
    assert bk["state"] == "Draft"
    assert (await wait_state(http, a, bk["id"], {"PendingProvision"}))["state"] == "PendingProvision"
    bid = uuid.UUID(bk["id"])
    host = ray.get_actor(host_name(settings, shard_of(bid, settings.booking_shards)), namespace=NAMESPACE)
    pid_before = (await host.stats.remote())["pid"]
    assert await _until(lambda: _has_external_id(pg, bid), 5)
    ray.kill(host, no_restart=False)  # Ray restarts it; the new process rebuilds from PostgreSQL
    done = await wait_state(http, a, bk["id"], {"Active", "Failed"}, 40)
    assert done["state"] == "Active", done
    assert (await host.stats.remote())["pid"] != pid_before
    assert [(t["version"], t["to"]) for t in done["transitions"]] == [(0, "Draft"), (1, "PendingProvision"), (2, "Active")]
    msgs = await _until(lambda: _n_msgs(nats_client, subject(settings, "bookings", a.tenant_id, bk["id"]), 3), 20)
    # each transition stored once; consumers order by booking_version (a crash may reorder publication)
    assert len(msgs) == 3 and len({m["msg_id"] for m in msgs}) == 3
    assert [m["state"] for m in sorted(msgs, key=lambda m: m["booking_version"])] == ["Draft", "PendingProvision", "Active"]


async def _has_external_id(pg, bid) -> bool:
    return bool(await pg.fetchval("SELECT external_booking_id FROM bookings WHERE id = $1", bid))


async def _n_msgs(nc, subj: str, n: int):
    msgs = await stream_messages(nc, subj)
    return msgs if len(msgs) >= n else None


async def test_restarting_the_whole_ray_runtime_mid_provisioning_loses_and_duplicates_nothing(private, nats_client):
    s = private["settings"].with_overrides(booking_shards=2, redis_prefix=private["settings"].redis_prefix + "rr:")
    row, ev = await _draft(private, "sbx-h100x1-slow", s)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    reports = []
    for phase in ("first", "second"):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.booking_ray_restart", phase, s.model_dump_json(), str(row["id"]),
            cwd=str(REPO_ROOT), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 180)
        assert proc.returncode == 0, (phase, out.decode()[-2000:], err.decode()[-3000:])
        reports.append(json.loads(out.decode().strip().splitlines()[-1]))
        if phase == "first":  # no Ray runs now: the booking waits, provisioning, in PostgreSQL
            assert (await repo.get(private["pool"], row["id"]))["status"] == "PendingProvision"
    assert reports[0]["state"] == "PendingProvision" and reports[0]["external_id"] == f"sbx-{row['id']}"
    assert reports[1]["state"] == "Active" and reports[1]["unpublished_events"] == 0
    steps = await _states(private["pool"], row["id"])
    assert [(v, t) for v, _, t, _ in steps] == [(0, "Draft"), (1, "PendingProvision"), (2, "Active")]
    assert steps[2][3] == "status"  # found by the rebuilt host asking the provider
    n = await private["pool"].fetchval("SELECT count(*) FROM outbox WHERE msg_id LIKE $1",
                                       f"{repo.msg_prefix(s)}{row['id']}:%")
    assert n == 3
    msgs = await _until(lambda: _n_msgs(nats_client, subject(s, "bookings", str(private["tenant"]), str(row["id"])), 3), 20)
    assert len(msgs) == 3 and len({m["msg_id"] for m in msgs}) == 3
    assert [m["state"] for m in sorted(msgs, key=lambda m: m["booking_version"])] == ["Draft", "PendingProvision", "Active"]
