"""Booking load generator, run as its own process by benchmarks/bookings.py; prints one JSON line.

`http` mode: `count` POST /bookings (each with its own Idempotency-Key) from `concurrency` clients.
`plain` mode, the baseline: the same accept work without HTTP or actors: per booking the offer re-check,
the Draft insert (row, transition, audit entry, outbox) and the Draft -> PendingProvision transaction,
from `concurrency` tasks on one asyncpg pool.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import timedelta


async def run_http(base: str, tokens: list[str], offers: list[str], count: int, conc: int, run: str) -> dict:
    import httpx

    lat, statuses, ids = [], {}, []
    nxt = iter(range(count))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in nxt:
            headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}", "Idempotency-Key": f"{run}-{i}"}
            t0 = time.perf_counter()
            try:
                r = await client.post("/bookings", json={"offer_id": offers[i % len(offers)], "hours": 1}, headers=headers)
                code = r.status_code
            except httpx.HTTPError as exc:
                code = type(exc).__name__
            lat.append(time.perf_counter() - t0)
            statuses[str(code)] = statuses.get(str(code), 0) + 1
            if code == 201:
                ids.append(r.json()["id"])

    t0 = time.perf_counter()
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        await asyncio.gather(*[worker(client) for _ in range(conc)])
    return {"latencies_s": lat, "statuses": statuses, "ids": ids, "duration_s": time.perf_counter() - t0}


async def run_plain(settings_json: str, owners: list[list[str]], offers: list[str], count: int, conc: int) -> dict:
    from cluster.db import create_pool
    from cluster.repositories import bookings as repo
    from cluster.settings import Settings
    from domain import bookings as rules
    from domain.audit import now_utc
    from domain.models import BookingState

    settings = Settings.model_validate_json(settings_json)
    pool = await create_pool(settings, min_size=4, max_size=16)
    lat, errors = [], 0
    nxt = iter(range(count))

    async def one(i: int) -> None:
        async with pool.acquire() as conn:
            offer = await repo.offer_for_booking(conn, uuid.UUID(offers[i % len(offers)]))
            start = now_utc()
            async with conn.transaction():
                tenant, user = owners[i % len(owners)]
                row, _ = await repo.create(conn, settings, tenant_id=uuid.UUID(tenant), user_id=uuid.UUID(user),
                                           offer=offer, start=start, end=start + timedelta(hours=1),
                                           idempotency_key=f"plain-{uuid.uuid4()}", request_hash=rules.request_fingerprint({}),
                                           trace_id=None)
            async with conn.transaction():
                await repo.transition(conn, settings, row, BookingState.pending_provision, source="api")

    async def worker() -> None:
        nonlocal errors
        for i in nxt:
            t0 = time.perf_counter()
            try:
                await one(i)
                lat.append(time.perf_counter() - t0)
            except Exception:
                errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(conc)])
    took = time.perf_counter() - t0
    await pool.close()
    return {"latencies_s": lat, "errors": errors, "duration_s": took}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["http", "plain"], required=True)
    ap.add_argument("--base")
    ap.add_argument("--tokens", help="JSON list of access tokens")
    ap.add_argument("--offers", required=True, help="comma-separated offer ids")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--run", default="bench")
    ap.add_argument("--settings", help="Settings JSON (plain mode)")
    ap.add_argument("--owners", help="JSON list of [tenant id, user id] (plain mode)")
    a = ap.parse_args()
    offers = a.offers.split(",")
    if a.mode == "http":
        out = asyncio.run(run_http(a.base, json.loads(a.tokens), offers, a.count, a.concurrency, a.run))
    else:
        out = asyncio.run(run_plain(a.settings, json.loads(a.owners), offers, a.count, a.concurrency))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
