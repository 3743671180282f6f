"""Rate limiting at the ingress (FR-SEC-2): per tenant for authenticated calls, per client IP otherwise.

Hot path (no remote call): a request spends a token from this replica's local lease of its tenant. When
the lease runs low, a background task leases the next batch from the tenant's `TenantLimiter` actor
(`actors.limiter`); only a replica with nothing in hand waits for that call. Each leased token carries
the moment it is earned in the shared bucket, so a replica spends a batch at the tenant's pace and a
denied request gets a correct `Retry-After`. Without Ray (in-process tests) or if the actor cannot be
reached, a local bucket with the tenant's limits answers instead.

Every limited response carries `X-RateLimit-Limit` (requests/s) and `X-RateLimit-Remaining` (tokens this
replica knows to be left); 429 answers add `Retry-After` (whole seconds) in the error format.
Unauthenticated requests are limited per client address (the real one, `gateway.http.client_address`; IPv6
per /64) by a bucket in each replica.
"""
from __future__ import annotations

import asyncio
import json
import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cluster.logs import get_logger
from cluster.repositories import directory
from cluster.repositories.directory import PlanLookup, TenantPlan
from domain.api_keys import is_api_key
from domain.ratelimit import TokenBucket, earned_after_s, retry_after_header
from gateway.auth.api_keys import cached_tenant
from gateway.auth.authz import bearer_token, token_service
from gateway.auth.tokens import TokenError
from gateway.http.client_address import scope_client, throttle_key
from gateway.http.edge import error_body
from gateway.http.metrics import RATE_LIMIT_DECISIONS

log = get_logger("ratelimit")
EXEMPT = ("/health", "/ready", "/metrics", "/docs", "/openapi.json", "/redoc")
_MAX_IPS = 50_000
_MAX_LEASE_ROUNDS = 4  # lease calls one request may wait for before it is denied
# A limiter actor that does not answer within this (being created on a loaded machine took over 10 s in
# benchmarks/faults.py) is replaced by the local bucket for now: requests never wait on it unboundedly.
_LEASE_TIMEOUT_S = 2.0


@dataclass
class Decision:
    allowed: bool
    limit: float
    remaining: int
    retry_after_s: float = 0.0


@dataclass
class _Segment:
    count: int          # tokens in this batch
    used: int           # spent so far
    before: float       # bucket level the actor saw before granting
    start: float        # local monotonic time of the grant
    rate: float

    def next_at(self) -> float:
        return self.start + earned_after_s(self.used, self.before, self.rate)


@dataclass
class _Lease:
    rate: float
    burst: int
    want: int
    segments: deque = field(default_factory=deque)
    in_hand: int = 0
    actor_tokens: float = 0.0
    next_lease_at: float = 0.0
    waiting: int = 0  # requests waiting for the next batch: it is sized for them
    task: asyncio.Task | None = None
    local: TokenBucket | None = None  # fallback without Ray

    def add(self, grant: dict[str, Any], t0: float) -> None:
        if grant["granted"] > 0:
            self.segments.append(_Segment(grant["granted"], 0, grant["before"], t0, grant["rate"]))
            self.in_hand += grant["granted"]
        else:
            self.next_lease_at = t0 + grant["wait_s"]
        self.actor_tokens = grant["before"] - grant["granted"]

    def spend(self, now: float) -> float:
        """Spend one token; 0.0 when spent, else seconds until the next one in hand is earned (inf: none)."""
        while self.segments:
            seg = self.segments[0]
            at = seg.next_at()
            if now < at:
                return at - now
            seg.used += 1
            self.in_hand -= 1
            if seg.used >= seg.count:
                self.segments.popleft()
            return 0.0
        return math.inf

    def remaining(self) -> int:
        return max(0, int(self.actor_tokens)) + self.in_hand


class TenantRateLimiter:
    """Per-replica state: plan cache, local leases per tenant, per-IP buckets."""

    def __init__(self, state: Any):
        self.state = state
        self.settings = state.settings
        self.leases: dict[str, _Lease] = {}
        self.plans: dict[str, tuple[float, float, int]] = {}  # tenant -> (fetched at, rate, burst)
        self.actors: dict[str, Any] = {}  # actor name -> handle
        self.ips: OrderedDict[str, TokenBucket] = OrderedDict()
        self._plan_loads: dict[str, asyncio.Task] = {}

    # --- per IP (anonymous) ---
    def check_ip(self, ip: str, now: float) -> Decision:
        s = self.settings
        b = self.ips.get(ip)
        if b is None:
            b = self.ips[ip] = TokenBucket.full(s.anon_rate_limit_rps, s.anon_rate_limit_burst, now)
            if len(self.ips) > _MAX_IPS:
                self.ips.popitem(last=False)
        else:
            self.ips.move_to_end(ip)
        if b.take(now):
            return Decision(True, s.anon_rate_limit_rps, int(b.tokens))
        return Decision(False, s.anon_rate_limit_rps, 0, b.wait_s(now))

    # --- per tenant ---
    async def _plan(self, tenant: str, now: float) -> tuple[float, int] | None:
        cached = self.plans.get(tenant)
        if cached is not None and now - cached[0] < self.settings.limiter_plan_ttl_s:
            return (cached[1], cached[2]) if cached[1] > 0 else None
        task = self._plan_loads.get(tenant)  # a burst's requests share one lookup
        if task is None:
            task = self._plan_loads[tenant] = asyncio.get_running_loop().create_task(self._load_plan(tenant, now))
            task.add_done_callback(lambda _t: self._plan_loads.pop(tenant, None))
        return await asyncio.shield(task)

    async def _load_plan(self, tenant: str, now: float) -> tuple[float, int] | None:
        # benchmarks set `limiter_plan_lookup`: plans without a database
        lookup: PlanLookup = getattr(self.state, "limiter_plan_lookup", None) or self._stored_plan
        plan = await lookup(tenant)
        limits = (plan.rate_limit_rps, plan.burst) if plan is not None else None
        self.plans[tenant] = (now, *(limits or (0.0, 0)))
        return limits

    async def _stored_plan(self, tenant: str) -> TenantPlan | None:
        return await directory.tenant_plan(await self.state.runtime.get_pg(), tenant)

    async def _actor(self, tenant: str, rate: float, burst: int):
        import ray

        if getattr(self.state, "limiter_use_ray", None) is False or not ray.is_initialized():
            return None
        from actors.limiter import actor_name, get_or_create

        name = actor_name(self.settings, tenant)
        actor = self.actors.get(name)
        if actor is None:
            actor = await asyncio.to_thread(get_or_create, self.settings, tenant)
            self.actors[name] = actor
        return actor

    async def _refill(self, tenant: str, lease: _Lease) -> None:
        try:
            actor = await asyncio.wait_for(self._actor(tenant, lease.rate, lease.burst), _LEASE_TIMEOUT_S)
            if actor is None:
                raise RuntimeError("ray not initialized")
            t0 = time.monotonic()
            # A burst larger than one batch is served by one lease of what it needs (up to the burst),
            # not by rounds of `want` that leave most of it waiting, then denied.
            want = min(lease.burst, max(lease.want, lease.waiting + lease.want))
            grant = await asyncio.wait_for(
                actor.lease.remote(tenant, want, lease.rate, lease.burst, 2 * lease.want), _LEASE_TIMEOUT_S)
            lease.add(grant, t0)
            lease.local = None
        except Exception as exc:
            from actors.limiter import actor_name

            self.actors.pop(actor_name(self.settings, tenant), None)
            lease.next_lease_at = time.monotonic() + 5.0  # retry the actor later, not per request
            if lease.local is None:
                lease.local = TokenBucket.full(lease.rate, lease.burst, time.monotonic())
                log.warning("tenant limiter unreachable; local bucket", extra={"error": str(exc)[:200]})
        finally:
            lease.task = None

    def _start_refill(self, tenant: str, lease: _Lease) -> asyncio.Task:
        if lease.task is None:
            lease.task = asyncio.get_running_loop().create_task(self._refill(tenant, lease))
        return lease.task

    async def check_tenant(self, tenant: str, now: float) -> Decision | None:
        lease = self.leases.get(tenant)
        if lease is None or now - self.plans.get(tenant, (0.0,))[0] >= self.settings.limiter_plan_ttl_s:
            plan = await self._plan(tenant, now)
            if plan is None:
                return None  # unknown or deleted tenant: the route answers 401/404
            rate, burst = plan
            want = max(1, min(burst, round(rate * self.settings.limiter_lease_s)))
            lease = self.leases.get(tenant)  # concurrent first requests share the lease one of them made
            if lease is None:
                lease = self.leases[tenant] = _Lease(rate, burst, want)
            elif (lease.rate, lease.burst) != (rate, burst):
                lease.rate, lease.burst, lease.want = rate, burst, want
                lease.local = None
        if lease.local is not None and lease.in_hand == 0:
            lease.local.reconfigure(lease.rate, lease.burst, now)
            if lease.in_hand == 0 and lease.task is None and now >= lease.next_lease_at:
                self._start_refill(tenant, lease)  # try the actor again in the background
            ok = lease.local.take(now)
            return Decision(ok, lease.rate, int(lease.local.tokens), 0.0 if ok else lease.local.wait_s(now))
        wait = lease.spend(now)
        if lease.in_hand * 2 < lease.want + 1 and lease.task is None and now >= lease.next_lease_at:
            self._start_refill(tenant, lease)  # prefetch: the next batch arrives before this one runs out
        if wait == 0.0:
            return Decision(True, lease.rate, lease.remaining())
        if wait == math.inf:
            lease.waiting += 1
            try:
                # Nothing in hand: wait for the next batch. If the batch ran out before this request's
                # turn (it was leased before more requests arrived), lease again while the tenant's
                # bucket still grants; a grant of nothing sets next_lease_at and ends the loop.
                for _ in range(_MAX_LEASE_ROUNDS):
                    if lease.task is None and time.monotonic() >= lease.next_lease_at:
                        self._start_refill(tenant, lease)
                    if lease.task is None:
                        break
                    await asyncio.shield(lease.task)
                    now = time.monotonic()
                    if lease.local is not None:
                        ok = lease.local.take(now)
                        return Decision(ok, lease.rate, int(lease.local.tokens),
                                        0.0 if ok else lease.local.wait_s(now))
                    wait = lease.spend(now)
                    if wait != math.inf:
                        break
            finally:
                lease.waiting -= 1
            now = time.monotonic()
            if wait == 0.0:
                return Decision(True, lease.rate, lease.remaining())
            if wait == math.inf:
                wait = max(lease.next_lease_at - now, 1.0 / lease.rate)
        return Decision(False, lease.rate, 0, wait)


def _limit_headers(d: Decision) -> list[tuple[bytes, bytes]]:
    limit = int(d.limit) if float(d.limit).is_integer() else d.limit
    return [(b"x-ratelimit-limit", str(limit).encode()), (b"x-ratelimit-remaining", str(max(0, d.remaining)).encode())]


class RateLimitMiddleware:
    """Pure ASGI middleware; verified claims are left in scope["state"]["auth_claims"] for `gateway.auth.authz`."""

    def __init__(self, app: ASGIApp, state: Any):
        self.app = app
        self.state = state
        self.limiter = TenantRateLimiter(state)

    async def decide(self, scope: Scope) -> Decision | None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or ()
                   if k in (b"authorization",)}
        now = time.monotonic()
        token = bearer_token(headers)
        if token is not None and is_api_key(token):
            tenant = await _api_key_tenant(self.state, token)
            d = await self.limiter.check_tenant(tenant, now) if tenant else None
            if d is not None:
                return d
        elif token is not None:
            try:
                claims = token_service(self.state).verify(token)
                scope.setdefault("state", {})["auth_claims"] = claims
                d = await self.limiter.check_tenant(claims.tenant_id, now)
                if d is not None:
                    return d
            except TokenError:
                pass  # an invalid token is limited per IP; the route answers 401
        return self.limiter.check_ip(throttle_key(scope_client(scope, self.state.settings.trusted_proxies)), now)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.state.settings.rate_limit_enabled or \
                scope.get("path", "").startswith(EXEMPT):
            await self.app(scope, receive, send)
            return
        d = await self.decide(scope)
        RATE_LIMIT_DECISIONS.labels("admitted" if d.allowed else "limited").inc()
        extra = _limit_headers(d)
        if not d.allowed:
            body = json.dumps(error_body(429, "rate limit exceeded", "rate_limited",
                                         {"limit_rps": d.limit})).encode()
            await send({"type": "http.response.start", "status": 429, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"retry-after", retry_after_header(d.retry_after_s).encode()), *extra]})
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _api_key_tenant(state: Any, token: str) -> str | None:
    """The tenant of an API key seen in the last minute (the route resolves and caches a new one)."""
    try:
        return await cached_tenant(state.runtime.redis, state.settings, token)
    except Exception:
        return None


def install_rate_limit(app) -> None:
    """Called from `deployments.ingress.create_app`: adds the limiter inside the edge middleware."""
    app.add_middleware(RateLimitMiddleware, state=app.state)
