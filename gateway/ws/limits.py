"""Per-tenant WebSocket connection limits (tenant `ws_limit`), counted in Redis across gateway processes.

Each gateway process counts its own connections in a field of one hash per tenant and keeps an
"alive" key with a TTL; a process that dies without cleaning up stops being counted once its key
expires (the next acquire removes its field).
"""
from __future__ import annotations

import time
import uuid
from typing import Any

from cluster.repositories.directory import PlanLookup
from cluster.settings import Settings

_ACQUIRE = """
local total = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if redis.call('EXISTS', ARGV[3] .. fields[i]) == 1 then
    total = total + tonumber(fields[i + 1])
  else
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
if total >= tonumber(ARGV[2]) then return -1 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], 86400)
return total + 1
"""


class TenantUnknown(Exception):
    """The token names a tenant that does not exist (or was deleted)."""


class ConnectionLimiter:
    """Acquire/release one connection slot for a tenant; limits from `plans` (the tenant's plan in
    PostgreSQL, `cluster.repositories.directory.tenant_plan`), cached briefly."""

    ALIVE_TTL_S = 30

    def __init__(self, settings: Settings, redis: Any, plans: PlanLookup, cache_s: float = 30.0):
        self.settings = settings
        self.redis = redis
        self.plans = plans
        self.cache_s = cache_s
        self.instance = uuid.uuid4().hex[:12]
        self._limits: dict[str, tuple[int, float]] = {}
        self.local: dict[str, int] = {}  # this process's connections per tenant (the truth for its field)
        self._synced: set[str] = set()
        self._script = redis.register_script(_ACQUIRE)
        p = settings.redis_prefix
        self._alive_prefix = f"{p}ws:gw:"
        self._conns_prefix = f"{p}ws:conns:"

    async def heartbeat(self) -> None:
        """Mark this process alive (call every ALIVE_TTL_S / 3)."""
        await self.redis.set(self._alive_prefix + self.instance, str(time.time()), ex=self.ALIVE_TTL_S)

    async def limit(self, tenant_id: str) -> int:
        hit = self._limits.get(tenant_id)
        now = time.monotonic()
        if hit and now - hit[1] < self.cache_s:
            return hit[0]
        plan = await self.plans(tenant_id)
        if plan is None:
            raise TenantUnknown(tenant_id)
        self._limits[tenant_id] = (plan.ws_limit, now)
        return plan.ws_limit

    async def acquire(self, tenant_id: str) -> int | None:
        """Take a slot: returns the tenant's connection count including this one, or None when at the limit."""
        limit = await self.limit(tenant_id)
        n = await self._script(keys=[self._conns_prefix + tenant_id],
                               args=[self.instance, limit, self._alive_prefix])
        if int(n) < 0:
            return None
        self.local[tenant_id] = self.local.get(tenant_id, 0) + 1
        return int(n)

    async def release(self, tenant_id: str) -> None:
        left = self.local.get(tenant_id, 0) - 1
        if left > 0:
            self.local[tenant_id] = left
        else:
            self.local.pop(tenant_id, None)
        await self.redis.hincrby(self._conns_prefix + tenant_id, self.instance, -1)

    async def sync(self) -> None:
        """Re-write this process's fields from its own counts, healing a release that failed (Redis blip)."""
        stale = [k for k in self._synced if k not in self.local]
        async with self.redis.pipeline(transaction=False) as p:
            for tid, n in self.local.items():
                p.hset(self._conns_prefix + tid, self.instance, n)
            for tid in stale:
                p.hdel(self._conns_prefix + tid, self.instance)
            await p.execute()
        self._synced = set(self.local)

    async def count(self, tenant_id: str) -> int:
        vals = await self.redis.hvals(self._conns_prefix + tenant_id)
        return sum(int(v) for v in vals)

    async def close(self) -> None:
        """Forget this process's slots (its connections are gone)."""
        await self.redis.delete(self._alive_prefix + self.instance)
