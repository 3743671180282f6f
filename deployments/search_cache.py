"""Two-tier cache of rendered search pages: an in-process dict in front of Redis.

Keys carry the index version (catalog generation + last applied price-delta sequence), so a generation bump
or a delta makes older entries unreachable (a logical purge); Redis entries also expire after the TTL.
Redis trouble never fails a search: after an error the cache skips Redis for a short back-off.
"""
from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from cluster.logs import get_logger
from cluster.settings import Settings
from deployments.search_metrics import CACHE_ERRORS

log = get_logger("search.cache")
_BACKOFF_S = 2.0
_OP_TIMEOUT_S = 0.25


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

    async def start(self) -> "PageCache":
        self.redis = aioredis.from_url(self.settings.redis_url, socket_timeout=_OP_TIMEOUT_S,
                                       socket_connect_timeout=_OP_TIMEOUT_S)
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
        if not self.redis_usable:
            return None
        try:
            return await self.redis.get(f"{self.prefix}{version}:{key}")
        except Exception as exc:  # redis down or slow: answer from the index
            self._failed("get", exc)
            return None

    def put(self, version: str, key: str, body: bytes) -> None:
        """Write in the background; the response does not wait for Redis."""
        if not self.redis_usable:
            return
        task = asyncio.get_running_loop().create_task(self._set(f"{self.prefix}{version}:{key}", body))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _set(self, key: str, body: bytes) -> None:
        try:
            await self.redis.set(key, body, ex=self.ttl)
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
