"""`sandbox`: a simulated provider that books end to end, for tests, demos and the bookings benchmark.

Its catalog is a handful of offers defined here (served like any snapshot). Provisioning behaves like a
real provider's API: `provision` is idempotent by booking id and answers at once; after
`settings.sandbox_delay_s` the machine is up (or, for `sandbox_fail_share` of bookings, has failed) and
the provider posts a signed webhook (HMAC secret `providers/sandbox#webhook_secret`) to our callback URL.
It sends a share of its webhooks twice (`sandbox_duplicate_share`) and for a share of bookings a stale
`provisioning` event after `provisioned` (`sandbox_out_of_order_share`). Its state lives in Redis, so
`status()` answers after our process restarts, as a real provider's API would; webhooks not yet sent
when the sending process dies are lost, like a real provider's undelivered callbacks, and status polls
recover them.

Offer behaviours (`attributes.sandbox_behavior`): `standard` (the settings above), `slow` (5 s), `fail`
(always fails), `never` (never answers: the provisioning timeout decides), `chaos` (duplicates and a
stale event, always).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable

import httpx

from adapters.base import Adapter, ProvisionRequest
from domain import webhooks
from domain.gpus import resolve
from domain.models import Offer

# (external id, GPU, count, price per hour, region, behaviour)
OFFERS: list[tuple[str, str, int, str, str, str]] = [
    ("sbx-h100x8-use1", "H100-SXM", 8, "19.920000", "us-east-1", "standard"),
    ("sbx-a100x1-euw1", "A100-80GB-SXM", 1, "1.890000", "eu-west-1", "standard"),
    ("sbx-4090x1-use1", "RTX-4090", 1, "0.440000", "us-east-1", "standard"),
    ("sbx-l4x1-euw4", "L4", 1, "0.710000", "europe-west4", "standard"),
    ("sbx-h100x1-slow", "H100-SXM", 1, "2.490000", "us-east-1", "slow"),
    ("sbx-h100x1-fail", "H100-SXM", 1, "2.390000", "us-east-1", "fail"),
    ("sbx-h100x1-never", "H100-SXM", 1, "2.290000", "us-east-1", "never"),
    ("sbx-h100x1-chaos", "H100-SXM", 1, "2.190000", "us-east-1", "chaos"),
]
BEHAVIOR = {o[0]: o[5] for o in OFFERS}
SLOW_DELAY_S = 5.0
SECRET = ("providers/sandbox", "webhook_secret")


def _share(booking_id: str, salt: str) -> float:
    """A stable number in [0, 1) per booking: the same booking always draws the same outcome."""
    return int(hashlib.sha256(f"{salt}:{booking_id}".encode()).hexdigest()[:8], 16) / 2 ** 32


class SandboxProvider(Adapter):
    NAME = "sandbox"
    DISPLAY = "Sandbox (simulated provider)"
    API_ENDPOINT = "sandbox://local"
    SNAPSHOT_DATE = "built in"
    SUPPORTS_PROVISIONING = True

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self._redis: Any = None
        self._http: httpx.AsyncClient | None = None  # one client for every webhook this process sends
        self._tasks: set[asyncio.Task] = set()

    # ---- catalog -------------------------------------------------------------------------------------
    def load_snapshot(self) -> Any:
        return [{"id": ext, "gpu": gpu, "count": n, "price": price, "region": region, "behavior": b}
                for ext, gpu, n, price, region, b in OFFERS]

    def records(self, raw: Any) -> Iterable[dict]:
        return raw

    def to_offers(self, rec: dict) -> list[Offer]:
        return [self.make_offer(external_id=rec["id"], name=f"sandbox {rec['count']}x {rec['gpu']}",
                                gpu=resolve(rec["gpu"]), gpu_count=rec["count"], price=Decimal(rec["price"]),
                                region=rec["region"], tags=["sandbox"],
                                attributes={"sandbox_behavior": rec["behavior"]})]

    async def fetch_live(self, http: Any) -> Any:
        return self.load_snapshot()

    # ---- provisioning ----------------------------------------------------------------------------------
    def _r(self) -> Any:
        if self._redis is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(self.settings.redis_url)
        return self._redis

    def _key(self, booking_id: str) -> str:
        return f"{self.settings.redis_prefix}sandbox:{booking_id}"

    def _plan(self, req: ProvisionRequest) -> tuple[str | None, float, bool, bool]:
        """(outcome or None for never, delay, duplicate, out of order) of one booking."""
        s, b = self.settings, BEHAVIOR.get(req.offer_external_id, "standard")
        if b == "never":
            return None, 0.0, False, False
        if b == "fail":
            return "failed", s.sandbox_delay_s, False, False
        if b == "chaos":
            return "provisioned", s.sandbox_delay_s, True, True
        fails = _share(req.booking_id, "fail") < s.sandbox_fail_share
        return ("failed" if fails else "provisioned", SLOW_DELAY_S if b == "slow" else s.sandbox_delay_s,
                _share(req.booking_id, "dup") < s.sandbox_duplicate_share,
                _share(req.booking_id, "ooo") < s.sandbox_out_of_order_share)

    async def provision(self, request: ProvisionRequest) -> str:
        external_id = f"sbx-{request.booking_id}"
        outcome, delay, dup, ooo = self._plan(request)
        ready_at = time.time() + delay
        created = await self._r().hsetnx(self._key(request.booking_id), "external_id", external_id)
        if created:  # a repeated request (booking resumed after a crash) gets the same machine, no new timer
            await self._r().hset(self._key(request.booking_id), mapping={
                "outcome": outcome or "", "ready_at": ready_at, "terminated": 0})
            await self._r().expire(self._key(request.booking_id), 7 * 86400)
            if outcome is not None:
                task = asyncio.get_running_loop().create_task(
                    self._deliver(request, external_id, outcome, delay, dup, ooo))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return external_id

    async def terminate(self, external_id: str) -> None:
        await self._r().hset(self._key(external_id.removeprefix("sbx-")), "terminated", 1)

    async def status(self, external_id: str) -> str:
        h = await self._r().hgetall(self._key(external_id.removeprefix("sbx-")))
        if not h:
            return "unknown"
        if h.get(b"terminated") == b"1":
            return "terminated"
        outcome = h.get(b"outcome", b"").decode()
        if not outcome or time.time() < float(h[b"ready_at"]):
            return "pending"
        return outcome

    async def _deliver(self, req: ProvisionRequest, external_id: str, outcome: str, delay: float,
                       dup: bool, ooo: bool) -> None:
        await asyncio.sleep(delay)
        if (await self.status(external_id)) == "terminated":
            return
        main = self._event(req, external_id, outcome)
        events = [main] + ([main] if dup else []) + ([self._event(req, external_id, "provisioning", -30)] if ooo else [])
        secret = self.secrets.get(*SECRET) if self.secrets is not None else None
        if not secret:
            return  # nobody can verify an unsigned callback: our status polls find the outcome
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10)
        for ev in events:
            body = json.dumps(ev).encode()
            for attempt in range(5):  # a real provider retries its webhooks; so do we
                try:
                    r = await self._http.post(req.callback_url, content=body,
                                               headers=webhooks.headers(secret, int(time.time()), body))
                    if r.status_code < 500:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5 * 2 ** attempt)

    @staticmethod
    def _event(req: ProvisionRequest, external_id: str, kind: str, age_s: float = 0.0) -> dict[str, Any]:
        ts = datetime.fromtimestamp(time.time() + age_s, timezone.utc).isoformat()
        return {"event_id": str(uuid.uuid4()), "type": kind, "booking_id": req.booking_id,
                "external_id": external_id, "ts": ts}

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._redis is not None:
            await self._redis.aclose()
        if self._http is not None:
            await self._http.aclose()
