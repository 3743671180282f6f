"""Per-process connections to PostgreSQL, Redis and NATS, opened in a lifecycle and checked for readiness.

A dependency that is down does not stop the process: it is reported by `check()` (and `/ready`) and
reconnected on the next use.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import nats
import redis.asyncio as aioredis

from cluster.db import create_pool
from cluster.logs import get_logger
from cluster.settings import Settings

log = get_logger("runtime")


async def _nats_error(exc: Exception) -> None:
    log.debug("nats error", extra={"error": str(exc)})


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
    nc: Any = None  # nats.aio.client.Client
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def start(self) -> "Runtime":
        """Open what can be opened now; failures are logged and retried lazily."""
        await asyncio.gather(self.get_pg(), self.get_nats(), return_exceptions=True)
        self.redis = aioredis.from_url(
            self.settings.redis_url,
            socket_timeout=self.settings.readiness_timeout_s,
            socket_connect_timeout=self.settings.readiness_timeout_s,
        )
        return self

    async def get_pg(self) -> asyncpg.Pool:
        if self.pg is None:
            async with self._lock:
                if self.pg is None:
                    try:
                        self.pg = await create_pool(self.settings)
                    except Exception as exc:
                        log.warning("postgres unavailable", extra={"error": str(exc)})
                        raise
        return self.pg

    async def get_nats(self):
        if self.nc is None or not self.nc.is_connected:
            if self.nc is not None and self.nc.is_reconnecting:
                raise ConnectionError("NATS is reconnecting")
            try:
                # A bounded number of reconnects: nats-py applies it to the first connect too, and an
                # unbounded one would hang start-up while NATS is down. A closed client is replaced on next use.
                self.nc = await nats.connect(
                    servers=self.settings.nats_url.split(","),
                    connect_timeout=self.settings.readiness_timeout_s,
                    max_reconnect_attempts=2,
                    reconnect_time_wait=0.2,
                    allow_reconnect=True,
                    error_cb=_nats_error,
                    name="gpubroker",
                )
            except Exception as exc:
                self.nc = None
                log.warning("nats unavailable", extra={"error": str(exc)})
                raise ConnectionError(f"NATS unreachable at {self.settings.nats_url}: {exc}") from None
        return self.nc

    async def _timed(self, name: str, coro_fn) -> DependencyStatus:
        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(coro_fn(), timeout=self.settings.readiness_timeout_s)
            return DependencyStatus(name, True, (time.perf_counter() - t0) * 1000)
        except Exception as exc:  # any failure means "down"; the reason is reported
            msg = str(exc) or type(exc).__name__
            return DependencyStatus(name, False, (time.perf_counter() - t0) * 1000, msg[:300])

    async def _check_pg(self) -> None:
        pool = await self.get_pg()
        await pool.fetchval("SELECT 1")

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
        if self.nc is not None:
            try:
                await self.nc.drain()
            except Exception:
                pass
        if self.redis is not None:
            await self.redis.aclose()
        if self.pg is not None:
            await self.pg.close()
