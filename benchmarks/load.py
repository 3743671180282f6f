"""The whole system under a mixed load of concurrent users (NFR-PERF-3: 10,000 concurrent users, <= 5 % errors).

    PYTHONPATH=. .venv/bin/python benchmarks/load.py [--users 1000] [--ws 1000] [--duration 60] [--think-s 5]

Everything real on loopback: a fresh database with the bundled catalog of every provider, the GCP price
history (forecasts) and the sandbox provider (bookings); one local Ray with the Serve application (throughput mode), the booking hosts and the WebSocket
gateway. Load comes from separate processes: `--procs` processes of logged-in HTTP users
(`benchmarks.load_users`: search, offer detail, session, forecast, bookings, login, export, each user
thinking between requests) and `--ws-procs` processes of WebSocket subscribers (`benchmarks.ws_load`)
receiving price updates published at `--update-rate` per second. Bounded: ramp-up plus `--duration`.

Prints and writes benchmarks/results/load.json: per route the rate, p50/p95/p99, error rate and statuses,
against the specification's budgets (3.10); WebSocket delivery; CPU and memory of the whole system (our
Ray processes and HAProxy; the shared PostgreSQL, Redis and NATS separately) and of the load generators.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
import uuid
from array import array
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.load_users import MIX, user_worker  # noqa: E402
from benchmarks.search import bench_settings, local_serve, machine, wait_http  # noqa: E402
from benchmarks.ws import pct, proc_cpu_s, proc_rss_mb, publish  # noqa: E402
from benchmarks.ws_load import client_worker, load_feed, user_filters  # noqa: E402
from cluster.ports import free_port  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "load.json"
PASSWORD = "load-test-password-1"
# specification 3.10 (p95) and NFR-PERF-1/3; routes it names no budget for are reported without one
BUDGET_P95_MS = {"search": 200, "export": 3000, "booking_create": 500}
SERVICES = ("postgres", "redis-server", "nats-server")


async def prepare(settings, n_accounts: int) -> dict:
    """A fresh database with the bundled catalog of every provider (what `gpubroker up` loads), the GCP price
    history (forecasts) and the sandbox provider (bookings); returns what the load processes need."""
    import asyncpg

    from actors.catalog import backfill_gcp_history, load_catalog
    from actors.pipeline import Ingestor
    from adapters.sandbox import SandboxProvider
    from cluster.db import create_pool, migrate

    admin = await asyncpg.connect(settings.database_url.rsplit("/", 1)[0] + "/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{settings.database_name}" WITH (FORCE)')
    finally:
        await admin.close()
    await migrate(settings)
    pool = await create_pool(settings, min_size=1, max_size=4)
    try:
        await load_catalog(Ingestor(settings, pool))
        await backfill_gcp_history(pool)
        sbx = SandboxProvider(settings)
        await Ingestor(settings, pool).ingest("sandbox", sbx.parse(sbx.load_snapshot()).offers, display=sbx.DISPLAY)
        n = await pool.fetchval("SELECT count(*) FROM offers")
        sandbox = [str(r["id"]) for r in await pool.fetch(
            "SELECT id FROM offers WHERE provider_id = 'sandbox' AND attributes->>'sandbox_behavior' = 'standard'")]
        offer_ids = [str(r["id"]) for r in await pool.fetch("SELECT id FROM offers ORDER BY random() LIMIT 2000")]
        combos = await pool.fetch(  # series with a price history
            "SELECT DISTINCT gpu_type, region, pricing FROM offers o WHERE provider_id = 'gcp' "
            "AND EXISTS (SELECT 1 FROM price_history h WHERE h.offer_id = o.id) ORDER BY 1, 2, 3")
    finally:
        await pool.close()
    predict = ["/predict?" + urlencode({"gpu_type": c["gpu_type"], "region": c["region"], "pricing": c["pricing"],
                                        "horizon_days": 14}) for c in combos]
    return {"offers": int(n), "offer_ids": offer_ids, "sandbox_offers": sandbox, "predict_paths": predict,
            "n_accounts": n_accounts}


async def accounts(base: str, settings, n: int) -> list[dict]:
    """`n` tenants with one logged-in user each (register + login through the API)."""
    import asyncpg

    out = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for i in range(n):
            email = f"load-{uuid.uuid4().hex[:10]}@example.test"
            r = await http.post("/auth/register", json={"email": email, "password": PASSWORD, "tenant_name": f"load{i}"})
            assert r.status_code == 201, r.text
            tok = (await http.post("/auth/login", json={"email": email, "password": PASSWORD})).json()
            out.append({"email": email, "password": PASSWORD, "token": tok["access_token"],
                        "tenant_id": r.json()["tenant_id"]})
    conn = await asyncpg.connect(settings.database_url)
    try:  # the users of one tenant share its limits: generous, so the figures are the system's, not the plan's
        await conn.execute("UPDATE tenants SET rate_limit_rps = 100000, burst = 100000, ws_limit = 100000")
    finally:
        await conn.close()
    return out


async def stream_token(settings, tenant_id: str) -> str:
    """An hour's access token with a live session for the subscribers (as benchmarks/ws.py): they stay
    connected through every stage, longer than a 5-minute login token lives."""
    import redis.asyncio as aioredis

    from gateway.auth.live_sessions import publish_session
    from gateway.auth.tokens import TokenService

    user, sid = str(uuid.uuid4()), str(uuid.uuid4())
    r = aioredis.from_url(settings.redis_url)
    try:
        await publish_session(r, settings, sid, user, tenant_id, "user")
    finally:
        await r.aclose()
    return TokenService(settings).issue(user, "user", tenant_id, ttl_s=3600, typ="access", sid=sid)


class Sampler:
    """CPU seconds and resident memory of the system (this process's descendants but the load processes)
    and of the shared services, sampled every second from /proc."""

    def __init__(self, exclude: set[int]):
        self.exclude, self.peak_rss_mb, self.peak_services_mb = exclude, 0.0, 0.0
        self.cpu: dict[int, float] = {}
        self.cpu_services: dict[int, float] = {}
        self.first: dict[int, float] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _procs() -> list[tuple[int, int, str]]:
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    stat = (d / "stat").read_text()
                    out.append((int(d.name), int(stat.rsplit(")", 1)[1].split()[1]), stat[stat.index("(") + 1:stat.rindex(")")]))
                except (OSError, ValueError):
                    pass
        return out

    def _system(self, procs) -> list[int]:
        children: dict[int, list[int]] = {}
        for pid, ppid, _ in procs:
            children.setdefault(ppid, []).append(pid)
        out, todo = [], [os.getpid()]
        while todo:
            for c in children.get(todo.pop(), []):
                if c not in self.exclude:
                    out.append(c)
                    todo.append(c)
        return out

    def sample(self) -> None:
        procs = self._procs()
        rss = svc_rss = 0.0
        for pid in self._system(procs):
            try:
                self.cpu[pid] = sum(proc_cpu_s(pid))
                self.first.setdefault(pid, self.cpu[pid])
                rss += proc_rss_mb(pid)
            except (OSError, ValueError, IndexError):
                pass
        for pid, _, name in procs:
            if name in SERVICES:
                try:
                    self.cpu_services[pid] = sum(proc_cpu_s(pid))
                    self.first.setdefault(-pid, self.cpu_services[pid])
                    svc_rss += proc_rss_mb(pid)
                except (OSError, ValueError, IndexError):
                    pass
        self.peak_rss_mb, self.peak_services_mb = max(self.peak_rss_mb, rss), max(self.peak_services_mb, svc_rss)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()

    def start(self) -> "Sampler":
        self.sample()
        self.t0 = time.monotonic()
        self._t.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        self._t.join()
        self.sample()
        wall = time.monotonic() - self.t0
        sys_cpu = sum(v - self.first.get(p, v) for p, v in self.cpu.items())
        svc_cpu = sum(v - self.first.get(-p, v) for p, v in self.cpu_services.items())
        return {"system_cores_used": round(sys_cpu / wall, 2), "system_peak_rss_mb": round(self.peak_rss_mb),
                "system_processes": len(self.cpu),
                "services_cores_used_shared": round(svc_cpu / wall, 2),
                "services_peak_rss_mb_shared": round(self.peak_services_mb),
                "note": "system: our Ray processes (GCS, raylet, Serve replicas, actors) and HAProxy; services: the "
                        "machine's PostgreSQL, Redis and NATS, shared with other users of this machine"}


def machine_busy() -> tuple[int, int]:
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(f) - f[3] - f[4], sum(f)


def route_figures(results: list[dict], wall: float) -> dict:
    out = {}
    for name in MIX:
        lat, statuses = array("f"), {}
        for r in results:
            raw, st = r[name]
            lat.frombytes(raw)
            for k, v in st.items():
                statuses[k] = statuses.get(k, 0) + v
        total = sum(statuses.values())
        errors = total - sum(v for k, v in statuses.items() if k[0] == "2")
        p = {q: pct(lat, q) for q in (50, 95, 99)}
        budget = BUDGET_P95_MS.get(name)
        out[name] = {"requests": total, "rate_per_s": round(total / wall, 1), "p50_ms": p[50], "p95_ms": p[95],
                     "p99_ms": p[99], "error_rate": round(errors / total, 4) if total else None, "statuses": statuses,
                     "budget_p95_ms": budget, "within_budget": None if budget is None or p[95] is None else p[95] <= budget}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", default="200,1000", help="concurrent HTTP users; a comma-separated list runs one "
                    "stage per count against the same system, smallest first")
    ap.add_argument("--ws", type=int, default=1000, help="concurrent WebSocket subscribers")
    ap.add_argument("--procs", type=int, default=2, help="HTTP load processes")
    ap.add_argument("--ws-procs", type=int, default=1, help="WebSocket load processes")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--think-s", type=float, default=5.0, help="mean think time between a user's requests")
    ap.add_argument("--update-rate", type=float, default=20.0, help="price updates published per second")
    ap.add_argument("--accounts", type=int, default=20)
    args = ap.parse_args()
    user_counts = sorted(int(u) for u in str(args.users).split(","))
    state = Path(tempfile.mkdtemp(prefix="bench-load-"))
    settings = bench_settings(state).with_overrides(
        database_url="postgresql://postgres@127.0.0.1:5432/gpubroker_bench_load", redis_prefix="bench-load:",
        nats_prefix="benchload.", ws_port=free_port(), chat_engine="none", booking_webhook_url="http://127.0.0.1:9",
        booking_status_poll_s=1.0, login_max_failures_ip=100000)
    out: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
                 "scenario": {**vars(args), "mix": MIX, "note": "each user waits for its answer, then thinks "
                              "(exponential, mean think_s): a stage offers at most users / think_s requests/s"}}
    t0 = time.monotonic()
    cfg = asyncio.run(prepare(settings, args.accounts))
    print(f"catalog: {cfg['offers']} offers ({time.monotonic() - t0:.0f} s)", flush=True)
    ctx = mp.get_context("spawn")
    with local_serve(settings) as base:
        from actors import booking_handles
        from deployments.ws_gateway import start_ws_gateway
        from cluster.messaging import ensure_streams
        from deployments.app import deploy

        deploy(settings)
        wait_http(f"{base}/ready", 300)
        booking_handles.start_hosts(settings)
        start_ws_gateway(settings, print)
        asyncio.run(_streams(settings, ensure_streams))
        cfg.update(accounts=asyncio.run(accounts(base, settings, args.accounts)), think_s=args.think_s)
        cfg["predict_paths"], out["forecast_paths_dropped"] = answered(base, cfg["predict_paths"], cfg["accounts"][0])
        print(f"system up, {args.accounts} accounts ({time.monotonic() - t0:.0f} s)", flush=True)

        # WebSocket subscribers first (they stay connected through the HTTP run)
        ready_q, result_q, stop_evt = ctx.Queue(), ctx.Queue(), ctx.Event()
        filters = user_filters(args.ws)
        ws_url = f"ws://127.0.0.1:{settings.ws_port}/v1"
        ws_token = asyncio.run(stream_token(settings, cfg["accounts"][0]["tenant_id"]))
        ws_procs = [ctx.Process(target=client_worker, args=(ws_url, ws_token, filters[i::args.ws_procs],
                                                            min(20, args.ws), ready_q, stop_evt, result_q, i, True),
                                daemon=True) for i in range(args.ws_procs)]
        for p in ws_procs:
            p.start()
        ws_ready = [ready_q.get(timeout=600) for _ in ws_procs]
        connected = sum(r[1] for r in ws_ready)
        print(f"websocket subscribers connected: {connected}/{args.ws}", flush=True)

        ws_pids = {p.pid for p in ws_procs}
        # warm-up, not reported: the first requests fill caches, start the limiter and booking actors, load the
        # forecast catalog (a first 50-user stage measured p95 5 s, the next 100-user stage 21 ms)
        warm = run_stage(ctx, base, settings, cfg, args, min(user_counts[0], 50), ws_pids, duration=10)
        out["warm_up"] = {"users": warm["users"], "overall": warm["overall"]}
        out["stages"] = []
        for users in user_counts:
            stage = run_stage(ctx, base, settings, cfg, args, users, ws_pids)
            stage["overall"]["concurrent_ws_subscribers"] = connected
            out["stages"].append(stage)
            _print(stage)
        time.sleep(2.0)
        stop_evt.set()
        ws_results = [result_q.get(timeout=120) for _ in ws_procs]
        for p in ws_procs:
            p.join(timeout=30)
    out["websocket"] = ws_figures(args.ws, connected, sum(st["updates_published"] for st in out["stages"]),
                                  sum(st["publish_errors"] for st in out["stages"]), ws_results)
    out.update({k: out["stages"][-1][k] for k in ("routes", "overall", "resources")})  # the largest stage
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({"websocket": out["websocket"]}, indent=2))
    print(f"wrote {RESULTS}")
    return 0


def answered(base: str, paths: list[str], acc: dict, keep: int = 40) -> tuple[list[str], dict]:
    """The forecast queries (up to `keep`) that the forecast answers 200 before the load (waiting up to 120 s
    for its catalog to load), and the answers of the ones it did not."""
    ok, dropped = [], {}
    deadline = time.monotonic() + 120
    with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {acc['token']}"}) as http:
        for p in paths:
            if len(ok) >= keep:
                break
            r = http.get(p)
            while r.status_code == 503 and time.monotonic() < deadline:
                time.sleep(1.0)
                r = http.get(p)
            if r.status_code == 200:
                ok.append(p)
            else:
                dropped[str(r.status_code)] = dropped.get(str(r.status_code), 0) + 1
                dropped.setdefault("example", f"{p}: {r.text[:300]}")
    if not ok:
        raise RuntimeError(f"the forecast answered none of the queries: {dropped}")
    return ok, dropped


async def _streams(settings, ensure_streams) -> None:
    import nats

    nc = await nats.connect(settings.nats_url)
    await ensure_streams(settings, nc.jetstream())
    await nc.close()


def run_stage(ctx, base: str, settings, cfg: dict, args, users: int, ws_pids: set[int],
              duration: float | None = None) -> dict:
    """`users` HTTP users in `args.procs` processes for a ramp-up (one think time) and `duration` seconds
    (`args.duration`), price updates published meanwhile; the figures of the measured part."""
    http_q = ctx.Queue()
    start_at = time.time() + 5
    end_at = start_at + args.think_s + (duration or args.duration)  # ramp-up spread over one think time
    per = [users // args.procs + (1 if i < users % args.procs else 0) for i in range(args.procs)]
    http_procs = [ctx.Process(target=user_worker, args=(base, per[i], cfg, start_at, end_at, http_q, i), daemon=True)
                  for i in range(args.procs)]
    for p in http_procs:
        p.start()
    load_pids = ws_pids | {p.pid for p in http_procs}
    time.sleep(max(0.0, start_at + args.think_s - time.time()))  # measure after the ramp-up
    sampler = Sampler(load_pids).start()
    busy0, load0 = machine_busy(), os.getloadavg()
    lg0 = sum(sum(proc_cpu_s(p)) for p in load_pids)
    n_updates = int(args.update_rate * max(1.0, end_at - time.time() - 1))
    _took, published, pub_errors = asyncio.run(publish(settings, load_feed(n_updates), args.update_rate))
    time.sleep(max(0.0, end_at - 0.5 - time.time()))
    measured = time.monotonic() - sampler.t0
    lg1 = sum(sum(proc_cpu_s(p)) for p in load_pids)
    busy1 = machine_busy()
    resources = {**sampler.stop(), "load_generators_cores_used": round((lg1 - lg0) / measured, 2),
                 "machine_busy_fraction": round((busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]), 3),
                 "measured_s": round(measured, 1), "load_avg_before": load0, "load_avg_after": os.getloadavg()}
    results = [r for _, r in sorted(http_q.get(timeout=120) for _ in http_procs)]
    for p in http_procs:
        p.join(timeout=30)
    wall = end_at - start_at
    routes = route_figures(results, wall)
    total = sum(r["requests"] for r in routes.values())
    errs = sum(round(r["error_rate"] * r["requests"]) for r in routes.values() if r["requests"])
    return {"users": users, "offered_max_per_s": round(users / args.think_s, 1), "routes": routes,
            "overall": {"concurrent_users_http": users, "requests": total, "rate_per_s": round(total / wall, 1),
                        "error_rate": round(errs / total, 4) if total else None,
                        "goal_error_rate_le_1pct": bool(total) and errs / total <= 0.01,
                        "spec_error_rate_le_5pct": bool(total) and errs / total <= 0.05},
            "resources": resources, "updates_published": published, "publish_errors": pub_errors}


def ws_figures(requested: int, connected: int, published: int, pub_errors: int, results: list) -> dict:
    lat, tot = array("f"), {}
    for _idx, counts, raw, raw_probe in results:
        lat.frombytes(raw)
        lat.frombytes(raw_probe)
        for k, v in counts.items():
            tot[k] = tot.get(k, 0) + v
    return {"requested": requested, "connected": connected, "published": published, "publish_errors": pub_errors,
            "delivered": tot.get("delivered", 0), "lagged": tot.get("lagged", 0), "errors": tot.get("errors", 0),
            "ingest_to_client_p50_ms": round(pct(lat, 50), 1) if lat else None,
            "ingest_to_client_p95_ms": round(pct(lat, 95), 1) if lat else None,
            "budget_p95_ms": 2000}


def _print(out: dict) -> None:
    print(f"stage: {out['users']} users")
    print(f"{'route':16s} {'req/s':>8s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} {'errors':>7s} budget")
    for name, r in out["routes"].items():
        print(f"{name:16s} {r['rate_per_s']:8.1f} {r['p50_ms'] or 0:8.1f} {r['p95_ms'] or 0:8.1f} {r['p99_ms'] or 0:8.1f} "
              f"{(r['error_rate'] or 0) * 100:6.2f}% {r['budget_p95_ms'] or '-'} {r['statuses']}")
    print(json.dumps({"overall": out["overall"], "resources": out["resources"]}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
