"""Per-process connections to PostgreSQL, Redis and NATS, opened in a lifecycle and checked for readiness.

A dependency that is down does not stop the process: it is reported by `check()` (and `/ready`), a call
that needs it raises at once (the edge answers 503 `dependency_unavailable`), and each client heals by
itself when its server is back (`cluster.connections`; asyncpg replaces connections the server closed).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from cluster.connections import NatsConnection, PostgresPool, redis_client
from cluster.repositories import liveness
from cluster.settings import Settings


@dataclass
class DependencyStatus:
    name: str
    ok: bool
    latency_ms: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"status": "up" if self.ok else "down", "latency_ms": round(self.latency_ms, 2)}
        if self.error:
            d["error"] = self.error
        return d


@dataclass
class Runtime:
    settings: Settings
    postgres: PostgresPool | None = None
    redis: aioredis.Redis | None = None
    nats: NatsConnection | None = None

    def __post_init__(self) -> None:
        if self.postgres is None:
            self.postgres = PostgresPool(self.settings)

    async def start(self) -> "Runtime":
        """Open what can be opened now; NATS keeps connecting in the background, PostgreSQL on next use."""
        self.redis = redis_client(self.settings)
        self.nats = NatsConnection(self.settings, "gpubroker").start()
        await asyncio.gather(self.get_pg(), self.nats.wait_connected(self.settings.readiness_timeout_s),
                             return_exceptions=True)
        return self

    @property
    def nc(self) -> Any:
        """The NATS client (connected or reconnecting), or None before the first connect."""
        return self.nats.nc if self.nats is not None else None

    @property
    def pg(self) -> asyncpg.Pool | None:
        """The PostgreSQL pool once opened, else None."""
        return self.postgres.pool

    async def get_pg(self) -> asyncpg.Pool:
        """The PostgreSQL pool, opened on first use; raises DependencyUnavailable("postgres") at once while
        it cannot be opened."""
        return await self.postgres.get()

    async def get_nats(self):
        """The connected NATS client; raises DependencyUnavailable("nats") at once while it is not."""
        if self.nats is None:
            self.nats = NatsConnection(self.settings, "gpubroker").start()
        return self.nats.client()

    async def _timed(self, name: str, coro_fn) -> DependencyStatus:
        t0 = time.perf_counter()
        try:
            # each check bounds its own calls by readiness_timeout_s (clients handle their own timeouts
            # cleanly; cancelling an asyncpg query from outside can leave its connection unusable), this
            # is only the backstop
            await asyncio.wait_for(coro_fn(), timeout=2 * self.settings.readiness_timeout_s)
            return DependencyStatus(name, True, (time.perf_counter() - t0) * 1000)
        except Exception as exc:  # any failure means "down"; the reason is reported
            msg = str(exc) or type(exc).__name__
            return DependencyStatus(name, False, (time.perf_counter() - t0) * 1000, msg[:300])

    async def _check_pg(self) -> None:
        pool = await self.get_pg()
        t = self.settings.readiness_timeout_s
        async with pool.acquire(timeout=t) as conn:
            await liveness.ping(conn, t)

    async def _check_redis(self) -> None:
        assert self.redis is not None, "redis client not started"
        await self.redis.ping()

    async def _check_nats(self) -> None:
        nc = await self.get_nats()
        await nc.flush(timeout=self.settings.readiness_timeout_s)

    async def check(self) -> list[DependencyStatus]:
        return list(
            await asyncio.gather(
                self._timed("postgres", self._check_pg),
                self._timed("redis", self._check_redis),
                self._timed("nats", self._check_nats),
            )
        )

    async def close(self) -> None:
        if self.nats is not None:
            await self.nats.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.postgres.close()
