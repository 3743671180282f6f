"""Outages: PostgreSQL, Redis and NATS, each stopped for a few seconds under light load and started again.

The system under test is a second Serve application in this session's Ray (one local Ray per test
session), with its own IngestWorker actor, both pointed at isolated PostgreSQL, Redis and NATS instances
this module starts (benchmarks/fault_services.py), so the machine's services are never stopped.
During an outage every answer is a success or 503 `dependency_unavailable` with Retry-After in the error
format, never a 500 and never a hang, and `/ready` names the dependency; afterwards every route heals by
itself, and every price event reaches JetStream exactly once (the outbox drains by itself).
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from decimal import Decimal

import asyncpg
import httpx
import pytest
import ray

from actors.pipeline import outbox_messages
from adapters import registry
from benchmarks.fault_services import IsolatedServices
from cluster.messaging import stream_name
from tests.auth_fixtures import PASSWORD, new_email

PREFIX = "/faults"
OUTAGE_S = 3.0
CLIENT_TIMEOUT_S = 8.0  # an answer slower than this is a hang: the request fails the test
HEAL_DEADLINE_S = 60.0  # liveness bound for healing by itself (the figures are in benchmarks/faults.py)
PROVIDER = "faultcloud"


def _offers(factor: float = 1.0) -> list:
    a = registry.build("runpod")
    out = []
    for o in a.parse(a.load_snapshot()).offers[:8]:
        upd = {"provider": PROVIDER}
        if factor != 1.0 and o.price_per_hour is not None:
            f = Decimal(str(round(factor, 4)))
            upd["price_per_hour"] = (o.price_per_hour * f).quantize(Decimal("0.0001"))
            upd["price_per_gpu_hour"] = (o.price_per_gpu_hour * f).quantize(Decimal("0.0001"))
        out.append(o.model_copy(update=upd))
    return out


@pytest.fixture(scope="module")
async def system(ray_session, serve_app, settings):
    """The isolated services, the app on them (under /faults), an ingest worker, a user and some offers."""
    from actors.provider_actor import IngestWorker
    from cluster.db import migrate
    from deployments.app import deploy

    svc = await asyncio.to_thread(lambda: IsolatedServices().start())
    # chat without its LLM: a second copy of the model would only take memory and CPU from this test
    fs = settings.with_overrides(**svc.urls(), readiness_timeout_s=0.5, limiter_plan_ttl_s=0.5, chat_engine="none")
    await migrate(fs)
    worker = ray_session.remote(IngestWorker).options(num_cpus=0, max_concurrency=16).remote(fs)
    await worker.ingest.remote(PROVIDER, _offers(), full=True)
    await asyncio.to_thread(deploy, fs, "faults", PREFIX)
    http = httpx.AsyncClient(base_url=serve_app + PREFIX, timeout=CLIENT_TIMEOUT_S)
    await _until_healthy(http, None, deadline_s=120)
    email = new_email("faults")
    r = await http.post("/auth/register", json={"email": email, "password": PASSWORD, "tenant_name": "faults"})
    assert r.status_code == 201, r.text
    r = await http.post("/auth/login", json={"email": email, "password": PASSWORD})
    token = r.json()["access_token"]
    r = await http.get("/providers", params={"provider": PROVIDER})
    offer_id = r.json()["items"][0]["id"]
    yield {"svc": svc, "settings": fs, "worker": worker, "http": http, "email": email,
           "auth": {"Authorization": f"Bearer {token}"}, "offer_id": offer_id}
    await http.aclose()
    from ray import serve

    await asyncio.to_thread(serve.delete, "faults")
    ray_session.kill(worker)
    await asyncio.to_thread(svc.close)


def _probes(sys: dict) -> list[tuple[str, str, dict]]:
    """(method, path, request kwargs): readiness, session + profile, authenticated search, offer detail,
    login, and the audit trail: between them PostgreSQL, Redis and NATS are each needed."""
    auth = {"headers": sys["auth"]} if sys else {}
    probes = [("GET", "/ready", {}), ("GET", "/providers", {"params": {"provider": PROVIDER}, **auth})]
    if sys:
        probes += [("GET", "/auth/me", auth), ("GET", f"/providers/{sys['offer_id']}", {}),
                   ("POST", "/auth/login", {"json": {"email": sys["email"], "password": PASSWORD}}),
                   ("GET", "/admin/audit", {"params": {"limit": 5}, **auth})]
    return probes


async def _until_healthy(http: httpx.AsyncClient, sys: dict | None, deadline_s: float = HEAL_DEADLINE_S) -> float:
    t0 = time.monotonic()
    last = ""
    while time.monotonic() - t0 < deadline_s:
        bad = []
        for method, path, kw in _probes(sys):
            try:
                r = await http.request(method, path, **kw)
                if r.status_code >= 300:
                    bad.append(f"{method} {path} {r.status_code} {r.text[:160]}")
            except httpx.HTTPError as exc:
                bad.append(f"{method} {path} {type(exc).__name__}")
        if not bad:
            return time.monotonic() - t0
        last = "; ".join(bad)
        await asyncio.sleep(0.2)
    raise AssertionError(f"not healed {deadline_s:.0f} s after the restart: {last}")


async def _events(fs, svc) -> tuple[list[str], list[str], int]:
    """(message ids in the outbox, message ids in the PRICES stream, outbox rows still unpublished)."""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    conn = await asyncpg.connect(fs.database_url)
    try:
        rows = await conn.fetch("SELECT subject, msg_id, payload::text AS payload, body, messages, published_at "
                                "FROM outbox")
    finally:
        await conn.close()
    outbox = [m for r in rows for _, m, _ in outbox_messages(r)]
    unpublished = sum(1 for r in rows if r["published_at"] is None)
    nc = await nats.connect(fs.nats_url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe("", stream=stream_name(fs, "PRICES"), config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=30.0))
        seen: list[str] = []
        while True:
            try:
                msgs = await sub.fetch(500, timeout=1.0)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                break
            seen += [m.headers.get("Nats-Msg-Id") for m in msgs]
    finally:
        await nc.close()
    return outbox, seen, unpublished


def _replica_logged(*parts: str) -> bool:
    """Whether a line holding every part reached a worker's log file of this session's Ray."""
    from pathlib import Path

    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    for f in logs.glob("worker-*.err"):
        if any(all(p in line for p in parts) for line in f.read_text(errors="replace").splitlines()):
            return True
    return False


@pytest.mark.parametrize("dep", ["postgres", "redis", "nats"])
async def test_outage_answers_503_and_heals(system, dep):
    http, svc, worker = system["http"], system["svc"], system["worker"]
    await _until_healthy(http, system)
    await asyncio.to_thread(svc.stop, dep)
    answers: Counter = Counter()
    ready_named: set[str] = set()
    ingest_failed = 0
    try:
        t_end = time.monotonic() + OUTAGE_S
        while time.monotonic() < t_end:
            for method, path, kw in _probes(system):
                r = await http.request(method, path, **kw)  # a hang raises ReadTimeout and fails the test
                answers[(path.split("/")[1], r.status_code)] += 1
                assert r.status_code < 500 or r.status_code == 503, f"{method} {path}: {r.status_code} {r.text}"
                if r.status_code == 503:
                    err = r.json()["error"]
                    assert err["code"] == "dependency_unavailable", r.text
                    assert err["trace_id"] and r.headers["retry-after"].isdigit()
                    if path == "/ready":
                        ready_named.update(err["details"]["down"])
                    else:
                        assert err["details"]["dependency"] == dep, r.text
            try:  # price changes during the outage (refused while PostgreSQL is down)
                await worker.ingest.remote(PROVIDER, _offers(1.0 + (time.monotonic() % 1) / 10), full=False)
            except ray.exceptions.RayTaskError as exc:
                assert dep == "postgres", exc
                ingest_failed += 1
    finally:
        await asyncio.to_thread(svc.start, dep)
    assert ready_named == {dep}, answers
    assert answers[("ready", 503)] > 0 and answers[("ready", 500)] == 0
    if dep == "postgres":
        assert ingest_failed > 0 and answers[("auth", 503)] > 0
        assert _replica_logged('"message": "dependency unavailable"', '"dependency": "postgres"')
    if dep == "redis":
        assert answers[("auth", 503)] > 0  # sessions and login throttling live in Redis
    await _until_healthy(http, system)
    # after the outage: new price changes flow, and the outbox drains by itself into JetStream exactly once
    await worker.ingest.remote(PROVIDER, _offers(1.5 + uuid.uuid4().int % 100 / 1000), full=False)
    t0 = time.monotonic()
    while True:
        outbox, stream, unpublished = await _events(system["settings"], svc)
        if unpublished == 0 or time.monotonic() - t0 > HEAL_DEADLINE_S:
            break
        await asyncio.sleep(0.5)
    assert unpublished == 0
    assert len(outbox) > 0
    assert sorted(set(stream)) == sorted(set(outbox))  # nothing lost
    assert len(stream) == len(set(stream))  # nothing duplicated
