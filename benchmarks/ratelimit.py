"""Rate limiter benchmark: admitted vs configured rate, and the limiter's added latency per request.

1. Accuracy: N tenants (default 100), each with its own TenantLimiter actor; R ingress "replicas" (Ray
   actors, num_cpus=0, each running the real `gateway.http.ratelimit.TenantRateLimiter`) offer every tenant
   `overload` x its configured rate between them for `warmup + duration` seconds; admissions in the
   measured window give each tenant's admitted rate. Target: within +-5% of the configured rate.
2. Latency: the real `RateLimitMiddleware` around a trivial ASGI app, called in-process with a valid
   access token (leases from a real actor), against the same app without the middleware (baseline) and
   the middleware with limiting disabled. Target: p99 added <= 1 ms.

The HTTP hop of Serve is left out on purpose: it costs ~0.6-4.5 ms of CPU per request on this machine
(RAY_NOTES) and would drown the figure being measured. Writes benchmarks/results/ratelimit.json.

    PYTHONPATH=. .venv/bin/python benchmarks/ratelimit.py [--tenants 100 --replicas 3 --duration 10]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import ray

from cluster.settings import load_settings


def _settings(state_dir: str, lease_s: float, enabled: bool = True, shards: int = 0):
    return load_settings(state_dir=state_dir, redis_prefix=f"bench{uuid.uuid4().hex[:6]}:", limiter_lease_s=lease_s,
                         rate_limit_enabled=enabled, limiter_plan_ttl_s=300, limiter_shards=shards)


def _state(settings, plans: dict[str, tuple[float, int]]):
    from cluster.repositories.directory import TenantPlan

    async def lookup(tenant: str) -> TenantPlan | None:
        plan = plans.get(tenant)
        return TenantPlan(plan[0], plan[1], 0) if plan else None

    return SimpleNamespace(settings=settings, limiter_plan_lookup=lookup)


@ray.remote(num_cpus=0)
class BenchReplica:
    """Stands in for one ingress replica: the real per-replica limiter, fed synthetic arrivals."""

    def __init__(self, settings, plans):
        from gateway.http.ratelimit import TenantRateLimiter

        self.lim = TenantRateLimiter(_state(settings, plans))

    async def warm(self, tenants: list[str]) -> None:
        """Create (or find) every tenant's limiter actor before the clock starts."""
        await asyncio.gather(*(self._warm_one(t) for t in tenants))

    async def _warm_one(self, t: str) -> None:
        plan = await self.lim.state.limiter_plan_lookup(t)
        actor = await self.lim._actor(t, plan.rate_limit_rps, plan.burst)
        await actor.stats.remote(t)  # the handle comes back before the actor's process is up

    async def run(self, tenants: list[str], offered_rps: float, warmup_s: float, duration_s: float,
                  start_at: float) -> dict:
        while time.time() < start_at:
            await asyncio.sleep(0.001)
        t0 = time.monotonic()
        t_measure, t_end = t0 + warmup_s, t0 + warmup_s + duration_s
        due = {t: 0.0 for t in tenants}
        admitted = {t: 0 for t in tenants}
        denied = 0
        pending: set[asyncio.Task] = set()
        last = t0

        async def one(t: str, now: float) -> None:
            nonlocal denied
            d = await self.lim.check_tenant(t, now)
            if d.allowed:
                if t_measure <= now < t_end:
                    admitted[t] += 1
            else:
                denied += 1

        while (now := time.monotonic()) < t_end:
            dt, last = now - last, now
            for t in tenants:
                due[t] += offered_rps * dt
                while due[t] >= 1:
                    due[t] -= 1
                    task = asyncio.create_task(one(t, now))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
            await asyncio.sleep(0.002)
        await asyncio.gather(*pending)
        return {"admitted": admitted, "denied": denied}


async def accuracy(args, state_dir: str) -> dict:
    settings = _settings(state_dir, args.lease_s, shards=args.shards)
    tenants = [str(uuid.uuid4()) for _ in range(args.tenants)]
    plans = {t: (args.rate, args.burst) for t in tenants}
    replicas = [BenchReplica.remote(settings, plans) for _ in range(args.replicas)]
    t = time.perf_counter()
    await asyncio.gather(*(r.warm.remote(tenants) for r in replicas))
    actors_ready_s = time.perf_counter() - t
    offered = args.rate * args.overload / args.replicas
    start_at = time.time() + 0.5
    results = await asyncio.gather(*(r.run.remote(tenants, offered, args.warmup, args.duration, start_at)
                                     for r in replicas))
    rates = [sum(res["admitted"][t] for res in results) / args.duration for t in tenants]
    errors = [(r - args.rate) / args.rate * 100 for r in rates]
    total_admitted = sum(rates) * args.duration
    return {
        "tenants": args.tenants, "replicas": args.replicas, "duration_s": args.duration, "warmup_s": args.warmup,
        "configured_rps_per_tenant": args.rate, "burst": args.burst, "offered_rps_per_tenant": args.rate * args.overload,
        "lease_s": args.lease_s, "limiter_actors": args.shards or args.tenants,
        "limiter_actors_ready_s": round(actors_ready_s, 2),
        "admitted_rps_per_tenant": {"mean": round(statistics.mean(rates), 3), "min": round(min(rates), 3),
                                    "max": round(max(rates), 3)},
        "error_pct": {"mean": round(statistics.mean(errors), 2), "min": round(min(errors), 2),
                      "max": round(max(errors), 2)},
        "tenants_within_5pct": sum(abs(e) <= 5 for e in errors),
        "aggregate_admitted_rps": round(total_admitted / args.duration, 1),
        "aggregate_configured_rps": args.rate * args.tenants,
        "denied_total": sum(r["denied"] for r in results),
    }


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def latency(args, state_dir: str) -> dict:
    from gateway.auth.authz import token_service
    from gateway.http.ratelimit import RateLimitMiddleware

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        return None

    tenant = str(uuid.uuid4())
    plans = {tenant: (1e6, 1_000_000)}  # never denies: we time the admitted path, leases included
    on, off = _state(_settings(state_dir, args.lease_s), plans), _state(_settings(state_dir, args.lease_s, False), plans)
    token = token_service(on).issue(str(uuid.uuid4()), "user", tenant, typ="access", sid=str(uuid.uuid4()))
    mw_on, mw_off = RateLimitMiddleware(app, on), RateLimitMiddleware(app, off)
    hdrs = [(b"authorization", f"Bearer {token}".encode()), (b"host", b"x")]

    def scope():
        return {"type": "http", "path": "/providers", "method": "GET", "headers": hdrs, "client": ("127.0.0.1", 1)}

    async def timed(fn, n):
        out = []
        for _ in range(n):
            t = time.perf_counter_ns()
            await fn(scope(), receive, send)
            out.append((time.perf_counter_ns() - t) / 1e6)
        return out

    for fn in (app, mw_off, mw_on):
        await timed(fn, 2000)  # warm-up (first lease, actor start)
    base, off_ms, on_ms = await timed(app, args.calls), await timed(mw_off, args.calls), await timed(mw_on, args.calls)
    lim = mw_on.limiter
    t_only = []
    for _ in range(args.calls):
        t = time.perf_counter_ns()
        await lim.check_tenant(tenant, time.monotonic())
        t_only.append((time.perf_counter_ns() - t) / 1e6)

    def summary(xs):
        return {"p50_ms": round(_pct(xs, 0.5), 4), "p99_ms": round(_pct(xs, 0.99), 4),
                "mean_ms": round(statistics.mean(xs), 4)}

    return {
        "calls": args.calls,
        "baseline_app": summary(base),
        "middleware_limiting_disabled": summary(off_ms),
        "middleware_with_limiter": summary(on_ms),
        "tenant_check_only": summary(t_only),
        "added_by_limiter_p50_ms": round(_pct(on_ms, 0.5) - _pct(base, 0.5), 4),
        "added_by_limiter_p99_ms": round(_pct(on_ms, 0.99) - _pct(base, 0.99), 4),
        "note": "middleware_with_limiter includes verifying the HS256 JWT to find the tenant",
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tenants", type=int, default=100)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rate", type=float, default=20.0, help="configured requests/s per tenant")
    ap.add_argument("--burst", type=int, default=20)
    ap.add_argument("--overload", type=float, default=2.0, help="offered / configured")
    ap.add_argument("--lease-s", type=float, default=0.25)
    ap.add_argument("--shards", type=int, default=16,
                    help="limiter actors the tenants are hashed onto (0: one actor per tenant, ~130 MB each)")
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--out", default="benchmarks/results/ratelimit.json")
    args = ap.parse_args()
    from cluster.ray_env import ray_env

    state_dir = tempfile.mkdtemp(prefix="bench-ratelimit-")
    os.environ.update(ray_env(load_settings(state_dir=state_dir)))
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="bench-ratelimit",
             _node_ip_address="127.0.0.1", log_to_driver=False, logging_level="ERROR")
    try:
        acc = await accuracy(args, state_dir)
        lat = await latency(args, state_dir)
    finally:
        ray.shutdown()
    result = {
        "benchmark": "ratelimit",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "ray": ray.__version__, "platform": platform.platform()},
        "accuracy": acc,
        "latency": lat,
        "targets": {"admitted_within_pct": 5, "added_p99_ms": 1.0},
        "passed": {"accuracy": acc["tenants_within_5pct"] == acc["tenants"],
                   "latency": lat["added_by_limiter_p99_ms"] <= 1.0},
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
