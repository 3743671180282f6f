"""Which failures count as a dependency outage (answered 503) and which as a bug (500), on real clients
pointed at closed ports, and the clients' own behaviour while their server is down."""
from __future__ import annotations

import asyncio

import asyncpg
import pytest

from cluster.connections import NatsConnection, redis_client
from cluster.dependencies import DependencyUnavailable, dependency_down
from tests.conftest import free_port


async def _raised(coro) -> BaseException:
    try:
        await coro
    except BaseException as exc:  # noqa: BLE001 - the exception is the test's subject
        return exc
    raise AssertionError("no exception")


async def test_closed_ports_are_outages_of_their_dependency(settings):
    port = free_port()
    pg = await _raised(asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/x", timeout=2))
    assert dependency_down(pg) == "postgres"
    r = redis_client(settings.with_overrides(redis_url=f"redis://127.0.0.1:{port}/1"))
    exc = await _raised(r.ping())
    await r.aclose()
    assert dependency_down(exc) == "redis"
    assert dependency_down(DependencyUnavailable("nats", "down")) == "nats"


async def test_other_errors_are_not_outages():
    assert dependency_down(RuntimeError("kaboom")) is None
    assert dependency_down(ValueError("bad")) is None
    assert dependency_down(OSError("disk full")) is None  # not raised inside a client library
    wrapped = RuntimeError("while storing")
    wrapped.__cause__ = asyncpg.exceptions.AdminShutdownError("terminating connection")
    assert dependency_down(wrapped) == "postgres"
    # asyncpg's own state error, as raised after the server cut a pooled connection's operation off
    state = asyncpg.exceptions.InternalClientError("cannot switch to state 15; another operation (2) is in progress")
    assert dependency_down(state) == "postgres"
    assert dependency_down(asyncpg.exceptions.InternalClientError("unexpected codec")) is None


async def test_nats_connection_starts_while_nats_is_down_and_connects_when_it_comes(settings, tmp_path):
    import subprocess

    port = free_port()
    conn = NatsConnection(settings.with_overrides(nats_url=f"nats://127.0.0.1:{port}"), "test").start()
    try:
        assert not await conn.wait_connected(0.5)
        with pytest.raises(DependencyUnavailable):
            conn.client()  # at once, no wait
        server = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert await conn.wait_connected(15)
            await conn.client().flush(timeout=2)
        finally:
            server.terminate()
            server.wait(10)
        await asyncio.sleep(0.5)
        with pytest.raises(DependencyUnavailable):
            conn.client()  # reconnecting, not closed
        assert not conn.nc.is_closed
    finally:
        await conn.close()


async def test_a_slow_connect_to_a_redis_without_client_setinfo_still_answers(settings):
    """A health-check PING that comes due while a new connection is being set up (a connect slower than the
    interval, as under load; here an interval of 1 ns) must not read another command's answer."""
    from unittest.mock import patch

    with patch("cluster.connections.REDIS_HEALTH_CHECK_S", 1e-9):
        r = redis_client(settings)
    try:
        assert r.connection_pool.connection_kwargs["health_check_interval"] == 1e-9
        assert await r.ping() is True
        assert await r.set(f"{settings.redis_prefix}setinfo-probe", "1", ex=5) is True
    finally:
        await r.aclose()
