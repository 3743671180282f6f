"""Booking load generator, run as its own process by benchmarks/bookings.py; prints one JSON line.

`http` mode: `count` POST /bookings (each with its own Idempotency-Key) from `concurrency` clients.
`read` mode, the HTTP floor: `count` GET /bookings/{id} (authentication, tenant check, one query) from
`concurrency` clients through the same HAProxy, Serve ingress and middleware.
`plain` mode, the baseline: the same accept work without HTTP or actors: per booking the offer re-check
and the Draft insert (row, transition, audit entry, outbox: one statement), and with `--submit` also the
host's read and Draft -> PendingProvision transition, from `concurrency` tasks on one asyncpg pool.
`bare` mode, the machine's floor: one single-row INSERT (autocommit, fsync'd) per booking from
`concurrency` tasks on the same pool size.
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

    lat, statuses, ids, owned = [], {}, [], []
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
                owned.append([i % len(tokens), r.json()["id"]])

    t0 = time.perf_counter()
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        await asyncio.gather(*[worker(client) for _ in range(conc)])
    return {"latencies_s": lat, "statuses": statuses, "ids": ids, "owned": owned, "duration_s": time.perf_counter() - t0}


async def run_read(base: str, tokens: list[str], owned: list[list], count: int, conc: int) -> dict:
    import httpx

    lat, statuses = [], {}
    nxt = iter(range(count))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in nxt:
            t0 = time.perf_counter()
            try:
                who, bid = owned[i % len(owned)]
                code = (await client.get(f"/bookings/{bid}", headers={"Authorization": f"Bearer {tokens[who]}"})).status_code
            except httpx.HTTPError as exc:
                code = type(exc).__name__
            lat.append(time.perf_counter() - t0)
            statuses[str(code)] = statuses.get(str(code), 0) + 1

    t0 = time.perf_counter()
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        await asyncio.gather(*[worker(client) for _ in range(conc)])
    return {"latencies_s": lat, "statuses": statuses, "duration_s": time.perf_counter() - t0}


async def run_bare(database_url: str, count: int, conc: int, pool_max: int) -> dict:
    import asyncpg

    pool = await asyncpg.create_pool(database_url, min_size=pool_max, max_size=pool_max)
    await pool.execute("CREATE TABLE IF NOT EXISTS bench_bare (id bigserial PRIMARY KEY, v uuid NOT NULL)")
    lat = []
    nxt = iter(range(count))

    async def worker() -> None:
        for _ in nxt:
            t0 = time.perf_counter()
            await pool.execute("INSERT INTO bench_bare (v) VALUES ($1)", uuid.uuid4())
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(conc)])
    took = time.perf_counter() - t0
    await pool.execute("DROP TABLE bench_bare")
    await pool.close()
    return {"latencies_s": lat, "errors": 0, "duration_s": took}


async def run_plain(settings_json: str, owners: list[list[str]], offers: list[str], count: int, conc: int,
                    submit: bool) -> dict:
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
        tenant, user = owners[i % len(owners)]
        async with pool.acquire() as conn:  # what POST /bookings does for a first request, in the same calls
            offer = await repo.offer_for_booking(conn, uuid.UUID(offers[i % len(offers)]))
            start = now_utc()
            row, _ = await repo.create(conn, settings, tenant_id=uuid.UUID(tenant), user_id=uuid.UUID(user),
                                       offer=offer, start=start, end=start + timedelta(hours=1),
                                       idempotency_key=f"plain-{uuid.uuid4()}", request_hash=rules.request_fingerprint({}),
                                       trace_id=None)
            if submit:  # what the host does next: read the row, move it
                row = await repo.get(conn, row["id"])
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
    ap.add_argument("--mode", choices=["http", "read", "plain", "bare"], required=True)
    ap.add_argument("--base")
    ap.add_argument("--tokens", help="JSON list of access tokens")
    ap.add_argument("--offers", help="comma-separated offer ids")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--run", default="bench")
    ap.add_argument("--settings", help="Settings JSON (plain mode)")
    ap.add_argument("--owners", help="JSON list of [tenant id, user id] (plain mode)")
    ap.add_argument("--submit", action="store_true", help="plain mode: also the Draft -> PendingProvision transaction")
    ap.add_argument("--owned", help="JSON list of [token index, booking id] (read mode)")
    ap.add_argument("--pool", type=int, default=16, help="pool size (bare mode)")
    a = ap.parse_args()
    offers = (a.offers or "").split(",")
    if a.mode == "http":
        out = asyncio.run(run_http(a.base, json.loads(a.tokens), offers, a.count, a.concurrency, a.run))
    elif a.mode == "read":
        out = asyncio.run(run_read(a.base, json.loads(a.tokens), json.loads(a.owned), a.count, a.concurrency))
    elif a.mode == "bare":
        out = asyncio.run(run_bare(json.loads(a.settings)["database_url"], a.count, a.concurrency, a.pool))
    else:
        out = asyncio.run(run_plain(a.settings, json.loads(a.owners), offers, a.count, a.concurrency, a.submit))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
