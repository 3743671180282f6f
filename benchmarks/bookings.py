"""Benchmark the booking path: 1,000 bookings through the sandbox provider at 100 concurrent clients.

    PYTHONPATH=. .venv/bin/python benchmarks/bookings.py [--count 1000] [--concurrency 100]
        [--ingress-replicas 1] [--tenants 10] [--db-pool-max N] [--profile DIR]

Own database, Ray, Serve (throughput mode) and booking hosts; the load comes from a separate process
(benchmarks/bookings_load.py). Measures: accept latency p50/p95/p99 (POST /bookings answered), time to
Active p95 (booking created -> Active transition, sandbox answering after `sandbox_delay_s`), lost and
duplicated bookings / transitions / JetStream events, processes and memory of the live bookings, and the
memory of one actor process per booking (what the sharded design avoids), and which waits PostgreSQL's
sessions spend the load in. Floors in the same run, from the same number of concurrent clients:
GET /bookings/{id} through the same HTTP stack; the accept transaction without HTTP or actors (and with
the host's Draft -> PendingProvision transaction added); a bare single-row INSERT loop. `--profile DIR`
writes py-spy stacks (collapsed) of the ingress and the hosts during 10 s of the accept load.
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


def bench_settings(state_dir: Path, ingress_replicas: int = 1, db_pool_max: int | None = None) -> Settings:
    return load_settings(database_url=f"postgresql://postgres@127.0.0.1:5432/gpubroker_bench_bk_{secrets.token_hex(3)}",
                         redis_prefix=f"bench-bk-{secrets.token_hex(3)}:", nats_prefix="benchbk.",
                         http_port=_free_port(), haproxy_stats_port=_free_port(), haproxy_metrics_port=_free_port(),
                         state_dir=state_dir, ingress_replicas_min=ingress_replicas,
                         ingress_replicas_max=ingress_replicas, log_level="WARNING",
                         anon_rate_limit_rps=1_000_000, anon_rate_limit_burst=1_000_000, sandbox_delay_s=1.0,
                         booking_status_poll_s=5.0, **({"db_pool_max": db_pool_max} if db_pool_max else {}))


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


async def accounts(base: str, settings: Settings, tenants: int) -> list[dict]:
    out = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for i in range(tenants):
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


def _descendants(name: str) -> list[int]:
    """Pids of this process's descendants whose command line starts with `name` (our Ray's workers only)."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        for k in kids.get(pid, []):
            todo.append(k)
            try:
                if (Path("/proc") / str(k) / "cmdline").read_bytes().startswith(name.encode()):
                    out.append(k)
            except OSError:
                pass
    return out


class PgWaits:
    """Samples what this database's sessions are doing every 20 ms while a load runs (pg_stat_activity):
    running, waiting on a lock (a tenant's audit chain), on the WAL (commit), or idle in a transaction
    (waiting for its client, e.g. a busy ingress event loop)."""

    def __init__(self, settings: Settings):
        import threading

        self.settings, self.counts, self.samples = settings, {}, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            while not self._stop.is_set():
                rows = await conn.fetch(
                    "SELECT state, coalesce(wait_event_type || ':' || wait_event, 'running') AS w, count(*) AS n "
                    "FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() "
                    "AND state IN ('active', 'idle in transaction') GROUP BY 1, 2", self.settings.database_name)
                self.samples += 1
                for r in rows:
                    key = "idle in transaction (client)" if r["state"] == "idle in transaction" else r["w"]
                    self.counts[key] = self.counts.get(key, 0) + r["n"]
                await asyncio.sleep(0.02)
        finally:
            await conn.close()

    def __enter__(self) -> "PgWaits":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def result(self) -> dict:
        """Mean number of sessions in each state over the samples, largest first."""
        n = max(self.samples, 1)
        return {k: round(v / n, 2) for k, v in sorted(self.counts.items(), key=lambda kv: -kv[1])[:8]}


def profile(seconds: int, out_dir: str) -> list[subprocess.Popen]:
    """py-spy (collapsed stacks) of the ingress replica and of the booking hosts during the accept load."""
    py_spy = Path(sys.executable).parent / "py-spy"
    procs = []
    for name in ("ray::ServeReplica:gpubroker:Ingress", "ray::BookingHost"):
        for i, pid in enumerate(_descendants(name)):
            out = Path(out_dir) / f"{name.split(':')[-1]}-{i}.txt"
            procs.append(subprocess.Popen([str(py_spy), "record", "--pid", str(pid), "--duration", str(seconds),
                                           "--rate", "50", "--format", "raw", "--output", str(out), "--nonblocking"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def run(args) -> dict:
    from cluster.messaging import delete_streams, ensure_streams
    from deployments.app import deploy

    state = Path(tempfile.mkdtemp(prefix="bench-bookings-"))
    settings = bench_settings(state, args.ingress_replicas, args.db_pool_max)
    os.environ.setdefault("GPUBROKER_SECRET_PROVIDERS_SANDBOX_WEBHOOK_SECRET", "bench-" + secrets.token_hex(16))
    offers = asyncio.run(prepare(settings))
    std = ",".join(offers[e] for e in STANDARD)
    res: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
                 "note": "baselines (same run, same tenants, 16 connections): the accept transaction without HTTP "
                         "or actors; that plus the Draft -> PendingProvision transaction; a bare INSERT loop. Each "
                         "tenant's audit chain serializes its appends in the first two. http_floor_get_booking: "
                         "GET /bookings/{id} through the same HTTP stack. The load generator shares the 2 cores.",
                 "load": {"bookings": args.count, "concurrency": args.concurrency, "tenants": args.tenants,
                          "db_pool_max": settings.db_pool_max,
                          "offers": STANDARD, "sandbox_delay_s": settings.sandbox_delay_s,
                          "booking_shards": settings.booking_shards, "ingress_replicas": args.ingress_replicas}}

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
            accs = asyncio.run(accounts(base, settings, args.tenants))
            tokens = json.dumps([a["token"] for a in accs])
            _load("--mode", "http", "--base", base, "--tokens", tokens, "--offers", std, "--count", "50",
                  "--concurrency", "10", "--run", "warmup", timeout=120)
            print(f"accepting {args.count} bookings from {args.concurrency} clients ...", flush=True)
            spies = profile(10, args.profile) if args.profile else []
            with PgWaits(settings) as waits:
                load = _load("--mode", "http", "--base", base, "--tokens", tokens, "--offers", std, "--count",
                             str(args.count), "--concurrency", str(args.concurrency), "--run", "run", timeout=600)
            for sp in spies:
                sp.wait(timeout=60)
            res["accept"] = {**_ms(load["latencies_s"]), "statuses": load["statuses"],
                             "duration_s": round(load["duration_s"], 2),
                             "bookings_per_s": round(len(load["ids"]) / load["duration_s"], 1),
                             "postgres_sessions_by_wait": waits.result()}
            print(f"  accept: {res['accept']}", flush=True)
            res["outcome"] = asyncio.run(outcome(settings, load["ids"], 90))
            print(f"  outcome: {res['outcome']}", flush=True)
            res["live_memory"] = live_memory(settings)
            print(f"  live memory: {res['live_memory']}", flush=True)
            read = _load("--mode", "read", "--base", base, "--tokens", tokens, "--owned", json.dumps(load["owned"]),
                         "--count", str(args.count), "--concurrency", str(args.concurrency), timeout=600)
            res["http_floor_get_booking"] = {**_ms(read["latencies_s"]), "statuses": read["statuses"],
                                             "duration_s": round(read["duration_s"], 2),
                                             "requests_per_s": round(len(read["latencies_s"]) / read["duration_s"], 1)}
            print(f"  HTTP floor (GET /bookings/id): {res['http_floor_get_booking']}", flush=True)
        print("baselines: the accept transactions without HTTP or actors; a bare INSERT loop ...", flush=True)
        owners = json.dumps([[a["tenant_id"], a["user_id"]] for a in accs])
        common = ["--settings", settings.model_dump_json(), "--owners", owners, "--offers", std,
                  "--count", str(args.count), "--concurrency", str(args.concurrency)]
        for key, extra in (("baseline_plain_accept", []), ("baseline_plain_accept_and_submit", ["--submit"]),
                           ("baseline_bare_insert", ["--pool", "16"])):
            with PgWaits(settings) as waits:
                plain = _load("--mode", "bare" if key == "baseline_bare_insert" else "plain", *common, *extra,
                              timeout=600)
            res[key] = {**_ms(plain["latencies_s"]), "errors": plain["errors"],
                        "duration_s": round(plain["duration_s"], 2),
                        "per_s": round(len(plain["latencies_s"]) / plain["duration_s"], 1),
                        "postgres_sessions_by_wait": waits.result()}
            print(f"  {key}: {res[key]}", flush=True)
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
    ap.add_argument("--ingress-replicas", type=int, default=1)
    ap.add_argument("--tenants", type=int, default=TENANTS, help="the clients' tenants (each has one audit chain)")
    ap.add_argument("--db-pool-max", type=int, help="asyncpg pool size per process (default: the setting's)")
    ap.add_argument("--profile", help="folder for py-spy stacks of the ingress and hosts during the accept load")
    args = ap.parse_args()
    t0 = time.monotonic()
    res = run(args)
    res["total_s"] = round(time.monotonic() - t0, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({"accept": res["accept"], "baseline": res["baseline_plain_accept"],
                      "targets": res["targets"]}, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
