"""A second Ray node dies: provider adapters, a tenant's limiter, the WebSocket gateway and the live bookings
placed on it are restarted by Ray on the surviving node and carry on from PostgreSQL and JetStream.

The second node joins this session's Ray (`tests.side_node`); everything here is placed on it with a soft
node affinity (Ray schedules the restart elsewhere once the node is gone) and runs on a database of this
module's own, so nothing of the session's is adopted. After SIGKILL of every process of that node:
syncs continue on their schedule, the tenant's admissions stay within rate x time + burst across the crash,
bookings caught mid-provisioning reach Active with each transition and event exactly once, and a stream
subscriber that reconnects gets every price update published before, during and after, once.
"""
from __future__ import annotations

import asyncio
import time
import types
import uuid
from datetime import timedelta

import pytest
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.db import create_pool, migrate
from cluster.messaging import subject
from cluster.ports import free_port
from cluster.repositories import bookings as repo
from domain.audit import now_utc
from domain.bookings import request_fingerprint
from tests.booking_fixtures import ingest_sandbox, stream_messages
from tests.conftest import drop_database
from tests.side_node import SideNode
from tests.ws_fixtures import make_tenant, price_update, publish, token_for

PROVIDERS = ["vastai", "crusoe"]
SYNC_INTERVAL_S = 1.5
RATE, BURST = 20.0, 10
BOOKINGS = 3
UPDATES_EACH_PHASE = 20
DEADLINE_S = 90.0  # liveness bound for the restarts (Ray notices a dead node by missed health checks)


@pytest.fixture(scope="module")
async def side(ray_session, settings, state_dir):
    node = await asyncio.to_thread(
        SideNode(ray.get_runtime_context().gcs_address, state_dir / "side-node.log", {"side": 1}).start)
    yield node
    await asyncio.to_thread(node.kill)


@pytest.fixture(scope="module")
async def world(settings, database, nats_client):
    """This module's database (migrated, the sandbox catalog, a tenant and user) and settings."""
    s = settings.with_overrides(
        database_url=f"{settings.database_url}_twonode", redis_prefix=f"{settings.redis_prefix}2n:",
        booking_webhook_url="http://127.0.0.1:9", booking_status_poll_s=0.3, booking_shards=1,
        ws_port=free_port(), ws_processes=1, ws_node_resource="")
    await migrate(s)
    pool = await create_pool(s, min_size=1, max_size=4)
    offers = await ingest_sandbox(s, pool, nats_client.jetstream())
    tenant = uuid.UUID(await make_tenant(pool))
    user = await pool.fetchval("INSERT INTO users (tenant_id, email, password_hash) VALUES ($1, $2, 'x') RETURNING id",
                               tenant, f"twonode-{uuid.uuid4().hex[:8]}@example.test")
    yield types.SimpleNamespace(settings=s, pool=pool, offers=offers, tenant=tenant, user=user,
                                ns=f"two-node-{s.redis_prefix}")
    await pool.close()
    await drop_database(s)


async def _draft(w, offer_ext: str):
    async with w.pool.acquire() as conn, conn.transaction():
        offer = await repo.offer_for_booking(conn, uuid.UUID(w.offers[offer_ext]))
        start = now_utc()
        return await repo.create(conn, w.settings, tenant_id=w.tenant, user_id=w.user, offer=offer, start=start,
                                 end=start + timedelta(hours=1), idempotency_key=None,
                                 request_hash=request_fingerprint({}), trace_id=None)


async def _until(fn, what: str, timeout: float = DEADLINE_S, step: float = 0.25):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = await fn()
        if value:
            return value
        await asyncio.sleep(step)
    raise AssertionError(f"not reached in {timeout:.0f} s: {what}")


async def _admissions(limiter, tenant: str, log: list, stop: asyncio.Event) -> None:
    """The ingress's own rate-limit path for one tenant, asked ~200 times a second: (time, admitted)."""
    while not stop.is_set():
        d = await limiter.check_tenant(tenant, time.monotonic())
        log.append((time.monotonic(), d.allowed))
        await asyncio.sleep(0.005)


async def test_killing_a_node_loses_and_duplicates_nothing(side, world, nats_client):
    from actors import booking_handles, limiter as limiter_actor
    from actors.provider_actor import start_actors
    from deployments.ws_gateway import gateway_actors
    from gateway.http.ratelimit import TenantRateLimiter
    from gpubroker.stream import PriceStreamClient

    s, tenant = world.settings, str(world.tenant)
    # soft: once the node is gone Ray restarts them elsewhere. A sliver of CPU: with none, Ray granted some of
    # these leases from idle workers on the head despite the affinity (4 of 8 actors, measured)
    on_side = {"scheduling_strategy": NodeAffinitySchedulingStrategy(side.node_id, soft=True), "num_cpus": 0.001}
    js = nats_client.jetstream()

    # --- everything on the side node: adapters, the tenant's limiter, the gateway, a booking host ---
    handles = await asyncio.to_thread(start_actors, s, PROVIDERS, interval_s=SYNC_INTERVAL_S, namespace=world.ns,
                                      adapter_options=on_side)
    adapters = [handles[p] for p in PROVIDERS]
    lim = await asyncio.to_thread(limiter_actor.get_or_create, s, tenant, **on_side)
    [gw] = await asyncio.to_thread(gateway_actors, s, namespace=world.ns, **on_side)
    host = await asyncio.to_thread(booking_handles.get_or_create, s, 0, **on_side)
    before = await asyncio.gather(*(a.status.remote() for a in adapters), lim.stats.remote(), gw.start.remote(),
                                  host.ready.remote())
    assert {b["node_id"] for b in before} == {side.node_id}, [(b.get("provider", b.get("shard", "?")), b["node_id"][:8])
                                                              for b in before] + [side.node_id[:8]]

    client = PriceStreamClient(f"ws://127.0.0.1:{s.ws_port}", token_for(s, tenant),
                               subscriptions={"mine": {"provider": ["twonode"]}}, backoff_cap=1.0)
    client_task = asyncio.create_task(client.run())
    await asyncio.wait_for(client.ready.wait(), 30)
    published = [await publish(s, js, price_update("twonode", price=f"1.{i:02d}")) for i in range(UPDATES_EACH_PHASE)]

    # the first syncs ran on the side node
    await _until(lambda: _all(adapters, lambda st: st["syncs"] >= 1), "first syncs")
    # bookings caught mid-provisioning (the sandbox answers this offer after 5 s)
    bookings = []
    for _ in range(BOOKINGS):
        row, ev = await _draft(world, "sbx-h100x1-slow")
        out = await host.submit.remote(str(row["id"]), ev)
        assert out["state"] == "PendingProvision", out
        bookings.append(row["id"])

    limiter = TenantRateLimiter(types.SimpleNamespace(settings=s, limiter_plan_lookup=_plan))
    admissions: list[tuple[float, bool]] = []
    stop = asyncio.Event()
    load = asyncio.create_task(_admissions(limiter, tenant, admissions, stop))
    await asyncio.sleep(2.0)

    # --- the node is lost ---
    t_kill = time.time()
    await asyncio.to_thread(side.kill)
    published += [await publish(s, js, price_update("twonode", price=f"2.{i:02d}")) for i in range(UPDATES_EACH_PHASE)]

    # bookings finish, each transition and event once
    async def all_active():
        rows = await world.pool.fetch("SELECT status FROM bookings WHERE id = ANY($1)", bookings)
        return all(r["status"] == "Active" for r in rows) and len(rows) == BOOKINGS

    await _until(all_active, "bookings Active after the node died")
    for bid in bookings:
        steps = await world.pool.fetch("SELECT version, to_state FROM booking_transitions WHERE booking_id = $1 "
                                       "ORDER BY version", bid)
        assert [(r["version"], r["to_state"]) for r in steps] == [(0, "Draft"), (1, "PendingProvision"), (2, "Active")]
        subj = subject(s, "bookings", tenant, str(bid))
        msgs = await _until(lambda: _at_least(stream_messages(nats_client, subj), 3), f"3 events of {bid}")
        assert len(msgs) == 3 and len({m["msg_id"] for m in msgs}) == 3, msgs
    after_host = await host.stats.remote()
    # the restarted host holds them again (Active is live until the booking ends)
    assert after_host["node_id"] != side.node_id and after_host["by_state"] == {"Active": BOOKINGS}, after_host

    # syncs continue by themselves on the surviving node, after the restart
    async def resumed():
        sts = await asyncio.gather(*(a.status.remote() for a in adapters))
        return all(st["node_id"] != side.node_id and st["running"] and (st["last_sync_ts"] or 0) > t_kill
                   for st in sts) and sts

    statuses = await _until(resumed, "adapters syncing again")
    rows = await world.pool.fetch("SELECT provider_id, last_sync_ts FROM provider_health WHERE provider_id = ANY($1)",
                                  PROVIDERS)
    assert len(rows) == len(PROVIDERS) and all(r["last_sync_ts"].timestamp() > t_kill for r in rows), rows
    for p, st in zip(PROVIDERS, statuses):
        n, distinct = await world.pool.fetchrow(
            "SELECT count(*), count(DISTINCT external_id) FROM offers WHERE provider_id = $1", p)
        assert n == distinct == st["offers"] > 0  # every offer once, none lost

    # the stream: the reconnected subscriber has every update once
    async def all_received():
        return len(client._seen) >= len(published)

    await _until(all_received, "every update through the restarted gateway")
    received = {u["seq"] for u in _drain(client.updates)}
    assert received == set(published) and client.connects >= 2
    gw_after = await gw.stats.remote()
    assert gw_after["node_id"] != side.node_id

    # rate limits held across the crash: admissions never exceed rate x time + burst, plus what one
    # replica may hold from leases (one batch and its debt) and its local bucket while the limiter was away
    lim_after = await _until(lambda: _restarted(lim, tenant), "the limiter restarted and leasing")
    await asyncio.sleep(2.0)
    stop.set()
    await load
    span = admissions[-1][0] - admissions[0][0]
    admitted = sum(ok for _, ok in admissions)
    want = max(1, min(BURST, round(RATE * s.limiter_lease_s)))
    assert admitted <= RATE * span + 2 * BURST + 3 * want, (admitted, span)
    assert admitted < len(admissions) / 2  # the limit was reached, not just never tried
    late = [ok for t, ok in admissions if t > admissions[-1][0] - 1.5]
    assert any(late), "nothing admitted after the restart"
    assert lim_after["node_id"] != side.node_id and lim_after["restarted"] is True

    await client.close()
    client_task.cancel()
    for h in [*handles.values(), gw, host, lim]:
        ray.kill(h)


async def _plan(tenant: str):
    from cluster.repositories.directory import TenantPlan

    return TenantPlan(rate_limit_rps=RATE, burst=BURST, ws_limit=100)


async def _all(adapters, pred) -> bool:
    return all(pred(st) for st in await asyncio.gather(*(a.status.remote() for a in adapters)))


async def _at_least(aw, n: int):
    msgs = await aw
    return msgs if len(msgs) >= n else None


async def _restarted(lim, tenant: str):
    st = await lim.stats.remote(tenant)
    return st if st.get("restarted") and st.get("granted", 0) > 0 else None


def _drain(q: asyncio.Queue) -> list[dict]:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out
