"""`TenantLimiter`: the Ray actor holding a tenant's token bucket (FR-SEC-2).

Ingress replicas never call it per request: each leases a batch of tokens and spends them locally
(`gateway.http.ratelimit`). A lease may reserve tokens slightly ahead of time (the bucket may go negative by
at most `debt_cap` tokens); each granted token comes with the moment it is earned, so a replica spends
a batch at exactly the tenant's rate and the sum over every replica never exceeds rate x time + burst.

By default (`limiter_shards` = 16) tenants are hashed onto 16 actors, each holding one bucket per tenant;
`limiter_shards` = 0 gives every tenant an actor of its own. The algorithm and the replica side are the
same. Why shards: each actor is a process (~130 MB RSS, ~2 s to start here), and with one actor per
tenant 100 tenants on this 2-core machine admitted 31 % under their configured rate (lease calls starved
among 100 processes), where 10 shards admitted within ±1 % (benchmarks/ratelimit.py).
"""
from __future__ import annotations

import time
import zlib
from typing import Any

import ray

from cluster.ray_env import actor_runtime_env
from domain.ratelimit import TokenBucket

NAMESPACE = "gpubroker-limiters"
_REMOTE = None


class TenantLimiter:
    """Token buckets of the tenant (or tenants, when sharded) this actor serves."""

    def __init__(self, name: str):
        self.name = name
        self.buckets: dict[str, TokenBucket] = {}
        self.leases: dict[str, int] = {}
        self.granted: dict[str, int] = {}

    def _bucket(self, tenant_id: str, rate: float, burst: int, now: float) -> TokenBucket:
        b = self.buckets.get(tenant_id)
        if b is None:
            b = self.buckets[tenant_id] = TokenBucket.full(rate, burst, now)
        elif (b.rate, b.burst) != (rate, float(burst)):
            b.reconfigure(rate, burst, now)
        return b

    async def lease(self, tenant_id: str, want: int, rate: float, burst: int, debt_cap: int) -> dict[str, Any]:
        """Grant up to `want` tokens. Returns {granted, before, rate, wait_s}: token j (0-based) of the
        batch is earned `max(0, (j + 1 - before) / rate)` seconds after this call; when nothing is granted,
        `wait_s` says how long until a whole batch can be."""
        now = time.monotonic()
        b = self._bucket(tenant_id, rate, burst, now)
        got = b.lease(now, want, debt_cap)
        self.leases[tenant_id] = self.leases.get(tenant_id, 0) + 1
        self.granted[tenant_id] = self.granted.get(tenant_id, 0) + got.granted
        return {"granted": got.granted, "before": got.before, "rate": b.rate, "wait_s": got.wait_s}

    async def configure(self, tenant_id: str, rate: float, burst: int) -> None:
        """Apply new plan limits at once (tokens above the new burst are dropped)."""
        self._bucket(tenant_id, rate, burst, time.monotonic())

    async def stats(self, tenant_id: str | None = None) -> dict[str, Any]:
        """Counters for tests and benchmarks (one tenant's bucket, or just the actor's name)."""
        if tenant_id is None or tenant_id not in self.buckets:
            return {"actor": self.name, "tenants": len(self.buckets)}
        b = self.buckets[tenant_id]
        b.refill(time.monotonic())
        return {"actor": self.name, "tenant_id": tenant_id, "tokens": b.tokens, "rate": b.rate, "burst": b.burst,
                "leases": self.leases.get(tenant_id, 0), "granted": self.granted.get(tenant_id, 0)}


def actor_name(settings, tenant_id: str) -> str:
    """One actor per tenant, or the tenant's shard when `limiter_shards` > 0."""
    shards = getattr(settings, "limiter_shards", 0)
    if shards:
        return f"{settings.redis_prefix}limiter-shard:{zlib.crc32(tenant_id.encode()) % shards}"
    return f"{settings.redis_prefix}limiter:{tenant_id}"


def get_or_create(settings, tenant_id: str):
    """The tenant's limiter actor, created on first use (named, detached, no CPU reserved). Blocking:
    call it from a thread (`asyncio.to_thread`), never from the event loop."""
    global _REMOTE
    if _REMOTE is None:
        _REMOTE = ray.remote(TenantLimiter)
    name = actor_name(settings, tenant_id)
    return _REMOTE.options(name=name, namespace=NAMESPACE, get_if_exists=True, lifetime="detached", num_cpus=0,
                           max_restarts=-1, runtime_env=actor_runtime_env(settings)).remote(name)
