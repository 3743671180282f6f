"""Two-tier cache of rendered search pages: an in-process dict in front of Redis.

Keys carry the index version (catalog generation + last applied price-delta sequence), so a generation bump
or a delta makes older entries unreachable (a logical purge); Redis entries also expire after the TTL.
Redis trouble never fails a search: after an error the cache skips Redis for a short back-off.
"""
from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from cluster.connections import redis_client
from cluster.logs import get_logger
from cluster.settings import Settings
from deployments.search_metrics import CACHE_ERRORS

log = get_logger("search.cache")
_BACKOFF_S = 2.0
_OP_TIMEOUT_S = 0.25
_WRITE_DELAY_S = 0.005


class PageCache:
    """Rendered pages by (version, query). `local_*` are synchronous; Redis calls never raise."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.prefix = settings.redis_prefix + "search:page:"
        self.generation_key = settings.redis_prefix + "catalog:generation"
        self.ttl = settings.search_cache_ttl_s
        self.max_local = settings.search_local_cache_entries
        self.redis: aioredis.Redis | None = None
        self._down_until = 0.0
        self._local: dict[bytes, bytes] = {}
        self._local_version: str | None = None
        self._writes: set[asyncio.Task] = set()
        self._gets: dict[str, list[asyncio.Future]] = {}
        self._get_scheduled = False
        self._sets: dict[str, bytes] = {}
        self._set_scheduled = False

    async def start(self) -> "PageCache":
        self.redis = redis_client(self.settings, op_timeout_s=_OP_TIMEOUT_S)
        return self

    async def close(self) -> None:
        for t in list(self._writes):
            t.cancel()
        if self.redis is not None:
            await self.redis.aclose()

    # ---- in-process tier (keyed by the raw query string; valid only for one index version) -----------
    def local_get(self, version: str, raw: bytes) -> bytes | None:
        if self._local_version != version:
            self._local.clear()
            self._local_version = version
            return None
        return self._local.get(raw)

    def local_put(self, version: str, raw: bytes, body: bytes) -> None:
        if self.max_local <= 0:
            return
        if self._local_version != version:
            self._local.clear()
            self._local_version = version
        if len(self._local) >= self.max_local:
            self._local.pop(next(iter(self._local)))
        self._local[raw] = body

    # ---- Redis tier ---------------------------------------------------------------------------------
    @property
    def redis_usable(self) -> bool:
        return self.redis is not None and self.ttl > 0 and time.monotonic() >= self._down_until

    def _failed(self, op: str, exc: Exception) -> None:
        if time.monotonic() >= self._down_until:
            log.warning("redis cache unavailable, backing off", extra={"op": op, "error": str(exc)[:200]})
        self._down_until = time.monotonic() + _BACKOFF_S
        CACHE_ERRORS.labels(op).inc()

    async def get(self, version: str, key: str) -> bytes | None:
        """Look a page up in Redis. Lookups made in the same loop iteration share one MGET."""
        if not self.redis_usable:
            return None
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._gets.setdefault(f"{self.prefix}{version}:{key}", []).append(fut)
        if not self._get_scheduled:
            self._get_scheduled = True
            loop.call_soon(self._spawn, self._flush_gets)
        return await fut

    def put(self, version: str, key: str, body: bytes) -> None:
        """Write in the background, pipelined with the other writes of the next few milliseconds."""
        if not self.redis_usable:
            return
        self._sets[f"{self.prefix}{version}:{key}"] = body
        if not self._set_scheduled:
            self._set_scheduled = True
            asyncio.get_running_loop().call_later(_WRITE_DELAY_S, self._spawn, self._flush_sets)

    def _spawn(self, fn) -> None:
        task = asyncio.get_running_loop().create_task(fn())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _flush_gets(self) -> None:
        self._get_scheduled = False
        waiters, self._gets = self._gets, {}
        keys = list(waiters)
        values: list = [None] * len(keys)
        try:
            values = await self.redis.mget(keys)
        except Exception as exc:  # redis down or slow: answer from the index
            self._failed("get", exc)
        finally:
            for k, v in zip(keys, values):
                for fut in waiters[k]:
                    if not fut.done():
                        fut.set_result(v)

    async def _flush_sets(self) -> None:
        self._set_scheduled = False
        batch, self._sets = self._sets, {}
        if not batch or not self.redis_usable:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for k, v in batch.items():
                    pipe.set(k, v, ex=self.ttl)
                await pipe.execute()
        except Exception as exc:
            self._failed("set", exc)

    async def generation(self) -> str | None:
        """The catalog generation ingestion bumps after each sync; None when Redis cannot say."""
        if self.redis is None:
            return None
        try:
            value = await self.redis.get(self.generation_key)
        except Exception as exc:
            self._failed("generation", exc)
            return None
        self._down_until = 0.0  # Redis answered: use it again
        return value.decode() if value is not None else "0"
