"""Benchmark the booking path: 1,000 bookings through the sandbox provider at 100 concurrent clients.

    PYTHONPATH=. .venv/bin/python benchmarks/bookings.py [--count 1000] [--concurrency 100]

Own database, Ray, Serve (throughput mode) and booking hosts; the load comes from a separate process
(benchmarks/bookings_load.py). Measures: accept latency p50/p95/p99 (POST /bookings answered), time to
Active p95 (booking created -> Active transition, sandbox answering after `sandbox_delay_s`), lost and
duplicated bookings / transitions / JetStream events, processes and memory of the live bookings, and the
memory of one actor process per booking (what the sharded design avoids). Baseline in the same run: the
same accept transactions without HTTP or actors, from the same number of concurrent tasks.
Writes benchmarks/results/bookings.json. Bounded: a few minutes.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.search import _free_port, local_serve, machine  # noqa: E402
from cluster.settings import Settings, load_settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bookings.json"
STANDARD = ["sbx-h100x8-use1", "sbx-a100x1-euw1", "sbx-4090x1-use1", "sbx-l4x1-euw4"]
TENANTS = 10
ONE_PER_BOOKING_SAMPLE = 10  # actors started to measure what one process per booking costs


def bench_settings(state_dir: Path) -> Settings:
    return load_settings(database_url=f"postgresql://postgres@127.0.0.1:5432/gpubroker_bench_bk_{secrets.token_hex(3)}",
                         redis_prefix=f"bench-bk-{secrets.token_hex(3)}:", nats_prefix="benchbk.",
                         http_port=_free_port(), haproxy_stats_port=_free_port(), haproxy_metrics_port=_free_port(),
                         state_dir=state_dir, ingress_replicas_min=1, ingress_replicas_max=1, log_level="WARNING",
                         anon_rate_limit_rps=1_000_000, anon_rate_limit_burst=1_000_000, sandbox_delay_s=1.0,
                         booking_status_poll_s=5.0)


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def _ms(xs: list[float]) -> dict:
    return {"n": len(xs), "p50_ms": round(_pct(xs, 50) * 1000, 1), "p95_ms": round(_pct(xs, 95) * 1000, 1),
            "p99_ms": round(_pct(xs, 99) * 1000, 1), "max_ms": round(max(xs, default=float("nan")) * 1000, 1)}


def _load(*args: str, timeout: float) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bookings_load", *args], capture_output=True, text=True,
                         timeout=timeout, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


async def prepare(settings: Settings) -> dict[str, str]:
    from actors.pipeline import Ingestor
    from adapters.sandbox import SandboxProvider
    from cluster.db import migrate

    from cluster.db import create_pool

    await migrate(settings)
    pool = await create_pool(settings, min_size=1, max_size=2)
    try:
        a = SandboxProvider(settings)
        await Ingestor(settings, pool).ingest("sandbox", a.parse(a.load_snapshot()).offers, display=a.DISPLAY)
        return {r["external_id"]: str(r["id"]) for r in await pool.fetch("SELECT external_id, id FROM offers")}
    finally:
        await pool.close()


async def accounts(base: str, settings: Settings) -> list[dict]:
    out = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for i in range(TENANTS):
            email = f"bench-{secrets.token_hex(4)}@example.test"
            r = await http.post("/auth/register", json={"email": email, "password": "bench password 123",
                                                         "tenant_name": f"bench-{i}"})
            r.raise_for_status()
            tok = (await http.post("/auth/login", json={"email": email, "password": "bench password 123"})).json()
            out.append({"tenant_id": r.json()["tenant_id"], "user_id": r.json()["user_id"], "token": tok["access_token"]})
    conn = await asyncpg.connect(settings.database_url)
    try:  # this load is one tenant's burst; the plan limits are not what is measured
        await conn.execute("UPDATE tenants SET rate_limit_rps = 1000000, burst = 1000000")
    finally:
        await conn.close()
    return out


async def outcome(settings: Settings, ids: list[str], deadline_s: float) -> dict:
    """Wait (bounded) until the accepted bookings are Active, then count what was lost or duplicated."""
    import nats

    from cluster.messaging import stream_name

    conn = await asyncpg.connect(settings.database_url)
    try:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            n = await conn.fetchval("SELECT count(*) FROM bookings WHERE id = ANY($1::uuid[]) AND status = 'Active'", ids)
            if n >= len(ids):
                break
            await asyncio.sleep(0.5)
        to_active = [r[0] for r in await conn.fetch(
            "SELECT extract(epoch FROM t.ts - b.created_at)::float8 FROM bookings b JOIN booking_transitions t "
            "ON t.booking_id = b.id AND t.to_state = 'Active' WHERE b.id = ANY($1::uuid[])", ids)]
        states = dict(await conn.fetch("SELECT status, count(*) FROM bookings WHERE id = ANY($1::uuid[]) GROUP BY 1", ids))
        dup_transitions = await conn.fetchval(
            "SELECT count(*) FROM (SELECT booking_id, to_state FROM booking_transitions WHERE booking_id = ANY($1::uuid[]) "
            "GROUP BY 1, 2 HAVING count(*) > 1) d", ids)
        rows_per_key = await conn.fetchval(
            "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM bookings GROUP BY tenant_id, idempotency_key) x")
        unpublished = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL AND msg_id LIKE '%:bk:%'")
    finally:
        await conn.close()
    await asyncio.sleep(6)  # one relay period for events still waiting
    nc = await nats.connect(settings.nats_url)
    try:
        info = await nc.jetstream().stream_info(stream_name(settings, "BOOKINGS"), subjects_filter=">")
        per_subject = info.state.subjects or {}
    finally:
        await nc.close()
    wanted = {i for i in ids}
    events = {k.rsplit(".", 1)[-1]: v for k, v in per_subject.items() if k.rsplit(".", 1)[-1] in wanted}
    return {"accepted": len(ids), "states": states, "time_to_active": _ms(to_active),
            "time_to_active_p95_s": round(_pct(to_active, 95), 2),
            "lost_bookings": len(ids) - len(to_active), "duplicate_bookings_per_key": max(0, rows_per_key - 1),
            "duplicate_transitions": dup_transitions, "events_expected": 3 * len(ids),
            "events_stored": sum(events.values()), "bookings_missing_events": sum(1 for i in ids if events.get(i, 0) < 3),
            "bookings_with_extra_events": sum(1 for v in events.values() if v > 3), "outbox_unpublished": unpublished}


def live_memory(settings: Settings) -> dict:
    """Processes and memory of the live bookings (the hosts), and of one actor process per booking."""
    import ray

    from actors.booking_handles import start_hosts

    stats = ray.get([h.stats.remote() for h in start_hosts(settings)])

    @ray.remote(num_cpus=0)
    class OneBooking:  # what "one actor per live booking" would run: a process holding one row
        def __init__(self, row: dict):
            self.row = row

        def memory(self) -> dict:
            from actors.booking_host import memory_bytes

            return memory_bytes()

    actors = [OneBooking.remote({"id": str(i), "status": "Active"}) for i in range(ONE_PER_BOOKING_SAMPLE)]
    mem = ray.get([a.memory.remote() for a in actors], timeout=300)
    for a in actors:
        ray.kill(a)
    live = sum(s["live"] for s in stats)
    mb = 2 ** 20
    per_actor_rss = sum(m["rss_bytes"] for m in mem) / len(mem)
    per_actor_pss = sum(m["pss_bytes"] for m in mem) / len(mem)
    return {"hosts": len(stats), "live_bookings": live, "processes": len(stats),
            "hosts_rss_mb": round(sum(s["rss_bytes"] for s in stats) / mb, 1),
            "hosts_pss_mb": round(sum(s["pss_bytes"] for s in stats) / mb, 1),
            "per_host": [{k: s[k] for k in ("shard", "live", "rss_bytes", "pss_bytes")} for s in stats],
            "one_actor_per_booking_rss_mb_each": round(per_actor_rss / mb, 1),
            "one_actor_per_booking_pss_mb_each": round(per_actor_pss / mb, 1),
            "one_actor_per_booking_projected_pss_gb": round(per_actor_pss * max(live, 1) / 2 ** 30, 1)}


def run(args) -> dict:
    from cluster.messaging import delete_streams, ensure_streams
    from deployments.app import deploy

    state = Path(tempfile.mkdtemp(prefix="bench-bookings-"))
    settings = bench_settings(state)
    os.environ.setdefault("GPUBROKER_SECRET_PROVIDERS_SANDBOX_WEBHOOK_SECRET", "bench-" + secrets.token_hex(16))
    offers = asyncio.run(prepare(settings))
    std = ",".join(offers[e] for e in STANDARD)
    res: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
                 "note": "the plain baseline runs the same transactions for the same tenants from one process; "
                         "each tenant's audit chain serializes its appends in both",
                 "load": {"bookings": args.count, "concurrency": args.concurrency, "tenants": TENANTS,
                          "offers": STANDARD, "sandbox_delay_s": settings.sandbox_delay_s,
                          "booking_shards": settings.booking_shards}}

    async def streams(fn):
        import nats

        nc = await nats.connect(settings.nats_url)
        await fn(settings, nc.jetstream())
        await nc.close()

    asyncio.run(streams(ensure_streams))
    try:
        with local_serve(settings) as base:
            from actors.booking_handles import start_hosts

            deploy(settings)
            start_hosts(settings)
            httpx.get(base + "/health", timeout=30)
            accs = asyncio.run(accounts(base, settings))
            tokens = json.dumps([a["token"] for a in accs])
            _load("--mode", "http", "--base", base, "--tokens", tokens, "--offers", std, "--count", "50",
                  "--concurrency", "10", "--run", "warmup", timeout=120)
            print(f"accepting {args.count} bookings from {args.concurrency} clients ...", flush=True)
            load = _load("--mode", "http", "--base", base, "--tokens", tokens, "--offers", std, "--count",
                         str(args.count), "--concurrency", str(args.concurrency), "--run", "run", timeout=600)
            res["accept"] = {**_ms(load["latencies_s"]), "statuses": load["statuses"],
                             "duration_s": round(load["duration_s"], 2),
                             "bookings_per_s": round(len(load["ids"]) / load["duration_s"], 1)}
            print(f"  accept: {res['accept']}", flush=True)
            res["outcome"] = asyncio.run(outcome(settings, load["ids"], 90))
            print(f"  outcome: {res['outcome']}", flush=True)
            res["live_memory"] = live_memory(settings)
            print(f"  live memory: {res['live_memory']}", flush=True)
        print("baseline: the same accept transactions without HTTP or actors ...", flush=True)
        owners = json.dumps([[a["tenant_id"], a["user_id"]] for a in accs])
        plain = _load("--mode", "plain", "--settings", settings.model_dump_json(), "--owners", owners, "--offers", std,
                      "--count", str(args.count), "--concurrency", str(args.concurrency), timeout=600)
        res["baseline_plain_transactions"] = {**_ms(plain["latencies_s"]), "errors": plain["errors"],
                                              "duration_s": round(plain["duration_s"], 2),
                                              "bookings_per_s": round(len(plain["latencies_s"]) / plain["duration_s"], 1)}
        print(f"  baseline: {res['baseline_plain_transactions']}", flush=True)
    finally:
        asyncio.run(streams(delete_streams))
        asyncio.run(_drop(settings))
    o, acc = res["outcome"], res["accept"]
    res["targets"] = {"accept_p95_le_50ms_goal": acc["p95_ms"] <= 50, "accept_p95_le_500ms_spec": acc["p95_ms"] <= 500,
                      "time_to_active_p95_le_5s_spec": o["time_to_active_p95_s"] <= 5,
                      "lost_0": o["lost_bookings"] == 0 and o["bookings_missing_events"] == 0,
                      "duplicated_0": o["duplicate_transitions"] == 0 and o["bookings_with_extra_events"] == 0
                      and o["duplicate_bookings_per_key"] == 0}
    return res


async def _drop(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.database_url.rsplit("/", 1)[0] + "/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{settings.database_name}" WITH (FORCE)')
    finally:
        await conn.close()


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=100)
    args = ap.parse_args()
    t0 = time.monotonic()
    res = run(args)
    res["total_s"] = round(time.monotonic() - t0, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({"accept": res["accept"], "baseline": res["baseline_plain_transactions"],
                      "targets": res["targets"]}, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
