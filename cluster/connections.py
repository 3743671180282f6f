"""The one way to open long-lived clients of PostgreSQL, Redis and NATS.

Each client heals by itself after its server restarts, and no call waits unboundedly while it is down:
- PostgreSQL: `PostgresPool` opens its asyncpg pool on first use, not at start, so a process starts while
  PostgreSQL is down; a failed open raises `DependencyUnavailable("postgres")` (503) and is tried again by
  the next call; asyncpg replaces pooled connections the server closed.
- Redis: a connection idle for `REDIS_HEALTH_CHECK_S` is PINGed before use, so connections the server
  dropped are replaced instead of failing a request; a connection error or timeout is retried once on a
  fresh connection (short backoff); every socket operation has a timeout.
- NATS: reconnects forever (`max_reconnect_attempts=-1`) with a bounded wait between attempts. nats-py then
  loops inside `connect()` for as long as the server is down, so `NatsConnection` runs the first connect
  in a background task: the process starts (and answers 503 for NATS) while NATS is down, and the same
  client object (and every JetStream context made from it) stays valid across reconnects.
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import asyncpg
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cluster.db import create_pool
from cluster.dependencies import DependencyUnavailable, dependency_down
from cluster.logs import get_logger
from cluster.settings import Settings

log = get_logger("connections")
REDIS_HEALTH_CHECK_S = 2  # a pooled connection idle this long is checked with PING before use
NATS_RECONNECT_WAIT_S = 0.25  # between reconnect attempts; a restarted nats-server is reached within ~0.3 s


class PostgresPool:
    """One asyncpg pool, opened on first use (`get()`); `pool_kw` as for `cluster.db.create_pool`."""

    def __init__(self, settings: Settings, **pool_kw: Any):
        self.settings = settings
        self.pool_kw = pool_kw
        self.pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> asyncpg.Pool:
        if self.pool is None:
            async with self._lock:
                if self.pool is None:
                    try:
                        self.pool = await create_pool(self.settings, **self.pool_kw)
                    except Exception as exc:
                        log.warning("postgres unavailable", extra={"error": str(exc)[:300]})
                        if dependency_down(exc) is None and not isinstance(exc, asyncpg.InvalidCatalogNameError):
                            raise
                        raise DependencyUnavailable("postgres", str(exc)[:200]) from exc
        return self.pool

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()


def redis_client(settings: Settings, *, op_timeout_s: float | None = None, max_connections: int | None = None,
                 blocking: bool = False) -> aioredis.Redis:
    """A Redis client that survives a Redis restart. `op_timeout_s` bounds connect and every command."""
    timeout = op_timeout_s if op_timeout_s is not None else settings.readiness_timeout_s
    kw: dict[str, Any] = dict(
        socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=REDIS_HEALTH_CHECK_S,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError], max_connections=max_connections)
    if blocking:
        pool = aioredis.BlockingConnectionPool.from_url(settings.redis_url, timeout=10, **kw)
        return aioredis.Redis(connection_pool=pool)
    return aioredis.from_url(settings.redis_url, **kw)


Callback = Callable[[], Awaitable[None]]


class NatsConnection:
    """One NATS client that connects in the background and reconnects forever.

    `client()` answers the connected client or raises `DependencyUnavailable("nats")` at once (no wait).
    `on_reconnect` callbacks run after every reconnect (re-create consumers, drain an outbox).
    """

    def __init__(self, settings: Settings, name: str, *, pending_size: int | None = None):
        self.settings = settings
        self.name = name
        self.pending_size = pending_size
        self.nc: Any = None
        self.on_reconnect: list[Callback] = []
        self.on_disconnect: list[Callback] = []
        self.connected = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> "NatsConnection":
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._connect())
        return self

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def client(self) -> Any:
        nc = self.nc
        if nc is None or not nc.is_connected:
            raise DependencyUnavailable("nats", "not connected" if nc is None else "reconnecting")
        return nc

    async def _run(self, callbacks: list[Callback]) -> None:
        for cb in list(callbacks):
            try:
                await cb()
            except Exception as exc:  # one failing hook must not stop the others
                log.warning("nats callback failed", extra={"client": self.name, "error": str(exc)[:200]})

    async def _connect(self) -> None:
        from nats.aio.client import Client

        async def disconnected() -> None:
            self.connected.clear()
            log.warning("nats disconnected", extra={"client": self.name})
            await self._run(self.on_disconnect)

        async def reconnected() -> None:
            self.connected.set()
            log.info("nats reconnected", extra={"client": self.name})
            await self._run(self.on_reconnect)

        async def error(exc: Exception) -> None:
            log.debug("nats error", extra={"client": self.name, "error": str(exc)[:200]})

        opts: dict[str, Any] = dict(
            servers=self.settings.nats_url.split(","), name=self.name, allow_reconnect=True,
            max_reconnect_attempts=-1, reconnect_time_wait=NATS_RECONNECT_WAIT_S,
            connect_timeout=self.settings.readiness_timeout_s, disconnected_cb=disconnected,
            reconnected_cb=reconnected, error_cb=error)
        if self.pending_size is not None:
            opts["pending_size"] = self.pending_size
        self.nc = Client()
        await self.nc.connect(**opts)  # returns once connected: it retries forever inside
        self.connected.set()
        log.info("nats connected", extra={"client": self.name})

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self.nc is not None:
            try:
                await self.nc.drain()
            except Exception:
                try:
                    await self.nc.close()
                except Exception:
                    pass
