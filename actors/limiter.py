"""`TenantLimiter`: one Ray actor per tenant holding the tenant's token bucket (FR-SEC-2).

Ingress replicas never call it per request: each leases a batch of tokens and spends them locally
(`gateway.ratelimit`). A lease may reserve tokens slightly ahead of time (the bucket may go negative by
at most `debt_cap` tokens); each granted token comes with the moment it is earned, so a replica spends
a batch at exactly the tenant's rate and the sum over every replica never exceeds rate x time + burst.
"""
from __future__ import annotations

import time
from typing import Any

import ray

from domain.ratelimit import TokenBucket

NAMESPACE = "gpubroker-limiters"
_REMOTE = None


class TenantLimiter:
    """The shared token bucket of one tenant."""

    def __init__(self, tenant_id: str, rate: float, burst: int):
        self.tenant_id = tenant_id
        self.bucket = TokenBucket.full(rate, burst, time.monotonic())
        self.leases = 0
        self.granted = 0

    async def lease(self, want: int, rate: float, burst: int, debt_cap: int) -> dict[str, Any]:
        """Grant up to `want` tokens. Returns {granted, before, rate, wait_s}: token j (0-based) of the
        batch is earned `max(0, (j + 1 - before) / rate)` seconds after this call; when nothing is granted,
        `wait_s` says how long until a batch can be."""
        now = time.monotonic()
        b = self.bucket
        if (b.rate, b.burst) != (rate, float(burst)):
            b.reconfigure(rate, burst, now)
        b.refill(now)
        before = b.tokens
        granted = max(0, min(int(want), int(before + debt_cap)))
        b.tokens -= granted
        self.leases += 1
        self.granted += granted
        wait_s = 0.0 if granted else (want - (before + debt_cap)) / b.rate  # until a whole batch
        return {"granted": granted, "before": before, "rate": b.rate, "wait_s": max(0.0, wait_s)}

    async def configure(self, rate: float, burst: int) -> None:
        """Apply new plan limits at once (tokens above the new burst are dropped)."""
        self.bucket.reconfigure(rate, burst, time.monotonic())

    async def stats(self) -> dict[str, Any]:
        """Counters for tests and benchmarks."""
        self.bucket.refill(time.monotonic())
        return {"tenant_id": self.tenant_id, "tokens": self.bucket.tokens, "rate": self.bucket.rate,
                "burst": self.bucket.burst, "leases": self.leases, "granted": self.granted}


def actor_name(prefix: str, tenant_id: str) -> str:
    return f"{prefix}limiter:{tenant_id}"


def get_or_create(settings, tenant_id: str, rate: float, burst: int):
    """The tenant's limiter, created on first use (named, detached, no CPU reserved). Blocking: call it
    from a thread (`asyncio.to_thread`), never from the event loop."""
    from cluster.ray_env import actor_runtime_env

    global _REMOTE
    if _REMOTE is None:
        _REMOTE = ray.remote(TenantLimiter)
    return _REMOTE.options(name=actor_name(settings.redis_prefix, tenant_id), namespace=NAMESPACE,
                       get_if_exists=True, lifetime="detached", num_cpus=0, max_restarts=-1,
                       runtime_env=actor_runtime_env(settings)).remote(tenant_id, rate, burst)
