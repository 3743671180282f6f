"""The gateway through a NATS restart (an isolated nats-server), and as the Ray actor `gpubroker up` starts."""
from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile

import pytest

from gateway.ws.server import PriceGateway
from gpubroker.stream import PriceStreamClient
from tests.conftest import free_port
from tests.ws_fixtures import make_tenant, next_update, price_update, publish, token_for, wait_for


def _start_nats(port: int, store: str) -> subprocess.Popen:
    return subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _wait_port(port: int, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


@pytest.fixture
async def own_nats():
    port, store = free_port(), tempfile.mkdtemp(prefix="ws-nats-")
    state = {"proc": _start_nats(port, store), "port": port, "store": store}
    await _wait_port(port)
    yield state
    state["proc"].terminate()
    state["proc"].wait(10)
    shutil.rmtree(store, ignore_errors=True)


async def _publish_retrying(settings, js, upd, timeout: float = 15) -> int:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await publish(settings, js, upd)
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_nats_restart_is_survived_without_losing_what_jetstream_kept(settings, pg, redis_client, own_nats):
    import nats

    s = settings.with_overrides(nats_url=f"nats://127.0.0.1:{own_nats['port']}", ws_batch_ms=5)
    g = await PriceGateway(s, port=0).start()
    pub = await nats.connect(s.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = pub.jetstream()
    tenant = await make_tenant(pg)
    c = PriceStreamClient(f"ws://127.0.0.1:{g.port}", token_for(s, tenant), subscriptions={"s": {"gpu_type": "H100"}},
                          backoff_base=0.05)
    task = asyncio.get_running_loop().create_task(c.run())
    try:
        await asyncio.wait_for(g.feed.connected.wait(), 10)
        await asyncio.wait_for(c.ready.wait(), 10)
        before = await publish(s, js, price_update("runpod", "H100_80GB_SXM5"))
        assert (await next_update(c))["seq"] == before

        own_nats["proc"].kill()  # NATS goes away without a goodbye
        own_nats["proc"].wait(10)
        await asyncio.sleep(0.5)
        own_nats["proc"] = _start_nats(own_nats["port"], own_nats["store"])
        await _wait_port(own_nats["port"])
        after = [await _publish_retrying(s, js, price_update("lambdalabs", "H100_80GB_PCIe", price=f"2.{i}"))
                 for i in range(5)]
        assert after == list(range(before + 1, before + 6))  # the stream survived on disk
        got = [(await next_update(c, 15))["seq"] for _ in range(5)]
        assert got == after
        assert g.feed.resubscribes >= 1

        # A client that was away during the outage resumes from its last seq: JetStream still has them.
        c.ws.transport.abort()
        more = [await publish(s, js, price_update("runpod", "H100_80GB_SXM5", price=f"1.{i}")) for i in range(3)]
        assert [(await next_update(c, 10))["seq"] for _ in range(3)] == more
        assert c.connects == 2 and c.duplicates == 0
    finally:
        await c.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pub.close()
        await g.stop()


async def test_gateway_as_ray_actor_started_by_up_step(ray_session, settings, pg, redis_client, nats_client):
    """The `gpubroker up` step starts the detached named actor; running it again reuses it; metrics show."""
    import ray

    from deployments.ws_gateway import ACTOR_PREFIX, start_ws_gateway
    from cluster.ray_env import MULTIPROC_ENV, metrics_env
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    lines: list[str] = []
    await asyncio.to_thread(start_ws_gateway, settings, lines.append)
    actor = ray.get_actor(f"{ACTOR_PREFIX}0")
    await asyncio.to_thread(start_ws_gateway, settings, lines.append)  # idempotent
    assert ray.get_actor(f"{ACTOR_PREFIX}0")._actor_id == actor._actor_id
    assert lines[0].startswith(f"websocket gateway: ws://{settings.ws_host}:{settings.ws_port}")
    try:
        tenant = await make_tenant(pg)
        c = PriceStreamClient(f"ws://127.0.0.1:{settings.ws_port}", token_for(settings, tenant),
                              subscriptions={"s": {"provider": "primecompute"}})
        task = asyncio.get_running_loop().create_task(c.run())
        await asyncio.wait_for(c.ready.wait(), 20)
        seq = await publish(settings, nats_client.jetstream(), price_update("primecompute", "B200_180GB"))
        assert (await next_update(c, 10))["seq"] == seq
        stats = await actor.stats.remote()
        assert stats["clients"] == 1 and stats["last_seq"] >= seq and stats["deliveries"] >= 1

        # The gateway process dies; Ray restarts the actor and the server is back without another `up`.
        # The client reconnects on its own and resumes after its last seq: an update published while the
        # gateway was down arrives, from JetStream.
        ray.kill(actor, no_restart=False)
        # ray.kill only asks: publish once the client has lost its connection, not to the dying gateway
        await wait_for(lambda: not c.ready.is_set(), 30)
        seq2 = await publish(settings, nats_client.jetstream(), price_update("primecompute", "B200_180GB"))
        got = await next_update(c, 60)
        assert got["seq"] == seq2 and got["seq"] > seq
        assert c.connects >= 2
        await c.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

        registry = CollectorRegistry()
        d = metrics_env(settings.state_dir)[MULTIPROC_ENV]
        multiprocess.MultiProcessCollector(registry, path=d)
        text = generate_latest(registry).decode()
        sent = [ln for ln in text.splitlines() if ln.startswith("gpubroker_ws_messages_sent_total ")]
        assert sent and float(sent[0].split()[1]) >= 1
    finally:
        ray.kill(actor)
