"""Fixtures for the booking tests: the sandbox catalog ingested through the real pipeline, the booking
hosts started, tenants with accounts, signed webhooks."""
from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

import httpx
import pytest

from actors.pipeline import Ingestor
from adapters.sandbox import SandboxProvider
from domain import webhooks
from tests.auth_fixtures import Account, add_user, signup

SECRET_ENV = "GPUBROKER_SECRET_PROVIDERS_SANDBOX_WEBHOOK_SECRET"


async def ingest_sandbox(settings: Any, pool: Any, js: Any = None) -> dict[str, str]:
    """The sandbox offers stored through the ingestion pipeline; external id -> offer id."""
    adapter = SandboxProvider(settings)
    await Ingestor(settings, pool, js=js).ingest("sandbox", adapter.parse(adapter.load_snapshot()).offers,
                                                 display=adapter.DISPLAY)
    rows = await pool.fetch("SELECT external_id, id FROM offers WHERE provider_id = 'sandbox'")
    return {r["external_id"]: str(r["id"]) for r in rows}


@pytest.fixture(scope="session")
async def sandbox_offers(settings, pg, nats_client) -> dict[str, str]:
    return await ingest_sandbox(settings, pg, nats_client.jetstream())


@pytest.fixture(scope="session")
async def booking_hosts(serve_app, settings, sandbox_offers):
    from actors.booking_handles import start_hosts

    return await asyncio.to_thread(start_hosts, settings)


@pytest.fixture(scope="module")
async def tenants(serve_app, booking_hosts, pg) -> dict[str, Account]:
    """Two tenants: an admin and an auditor in A, an admin in B; and `burst`, a tenant whose plan allows
    bursts of concurrent requests (the default plan's limiter would answer some of them 429)."""
    async with httpx.AsyncClient(base_url=serve_app, timeout=15) as http:
        a = await signup(http, "booking-a")
        auditor = await add_user(http, a, "auditor")
        b = await signup(http, "booking-b")
        burst = await signup(http, "booking-burst")
        await pg.execute("UPDATE tenants SET rate_limit_rps = 10000, burst = 10000 WHERE id = $1",
                         uuid.UUID(burst.tenant_id))
    return {"a": a, "a_auditor": auditor, "b": b, "burst": burst}


def signed(body: dict, ts: int | None = None, secret: str | None = None) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, webhooks.headers(secret or os.environ[SECRET_ENV], ts if ts is not None else int(time.time()), raw)


def event(booking_id: str, kind: str, event_id: str | None = None) -> dict:
    return {"event_id": event_id or str(uuid.uuid4()), "type": kind, "booking_id": booking_id}


async def book(http: httpx.AsyncClient, acc: Account, offer_id: str, key: str | None = None, **body: Any) -> httpx.Response:
    headers = dict(acc.h)
    if key:
        headers["Idempotency-Key"] = key
    return await http.post("/bookings", json={"offer_id": offer_id, "hours": 1, **body}, headers=headers)


async def wait_state(http: httpx.AsyncClient, acc: Account, booking_id: str, states: set[str],
                     timeout: float = 20.0) -> dict:
    """Poll GET /bookings/{id} until its state is one of `states` (bounded; returns the last body)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    body: dict = {}
    while loop.time() < end:
        r = await http.get(f"/bookings/{booking_id}", headers=acc.h)
        body = r.json()
        if body.get("state") in states:
            return body
        await asyncio.sleep(0.2)
    return body


async def stream_messages(nc, subj: str) -> list[dict]:
    """The messages JetStream stored on `subj`, with their Nats-Msg-Id (an ordered consumer reads each once)."""
    js = nc.jetstream()
    sub = await js.subscribe(subj, ordered_consumer=True)
    out = []
    try:
        while True:
            try:
                m = await sub.next_msg(timeout=1.0)
            except Exception:
                break
            out.append({"msg_id": m.headers.get("Nats-Msg-Id") if m.headers else None, **json.loads(m.data)})
    finally:
        await sub.unsubscribe()
    return out
