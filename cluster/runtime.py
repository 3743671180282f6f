"""Per-process connections to PostgreSQL, Redis and NATS, opened in a lifecycle and checked for readiness.

A dependency that is down does not stop the process: it is reported by `check()` (and `/ready`), a call
that needs it raises at once (the edge answers 503 `dependency_unavailable`), and each client heals by
itself when its server is back (`cluster.connections`; asyncpg replaces connections the server closed).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from cluster.connections import NatsConnection, redis_client
from cluster.db import create_pool
from cluster.dependencies import DependencyUnavailable, dependency_down
from cluster.logs import get_logger
from cluster.repositories import liveness
from cluster.settings import Settings

log = get_logger("runtime")


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
    pg: asyncpg.Pool | None = None
    redis: aioredis.Redis | None = None
    nats: NatsConnection | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

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

    async def get_pg(self) -> asyncpg.Pool:
        if self.pg is None:
            async with self._lock:
                if self.pg is None:
                    try:
                        self.pg = await create_pool(self.settings)
                    except Exception as exc:
                        log.warning("postgres unavailable", extra={"error": str(exc)[:300]})
                        if dependency_down(exc) is None and not isinstance(exc, asyncpg.InvalidCatalogNameError):
                            raise
                        raise DependencyUnavailable("postgres", str(exc)[:200]) from exc
        return self.pg

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
        if self.pg is not None:
            await self.pg.close()
