"""WebSocket gateway benchmark on loopback: (a) 10,000 user-like subscribers at 500 updates/s from the replayed
marketplace feed, (b) a broadcast of every update to 10,000 clients at 2 updates/s.

Everything is real: PostgreSQL (a throw-away database: tenant and its ws_limit), Redis (connection
counts), NATS JetStream (a bench-only stream prefix), the gateway as separate processes sharing the
port (SO_REUSEPORT), clients in separate processes (many connections each). Latency is ingest-to-client:
the publisher's `ts` in each update versus the client's clock when the frame is parsed.

    PYTHONPATH=. .venv/bin/python benchmarks/ws.py [--clients 10000] [--gateways 2] [--workers 4] [--c-clients]

Load generator: in each client process the first clients are `gpubroker.stream.PriceStreamClient`s (probes:
every update parsed, seq checked), the rest lean connections: Python (`--light-clients` counts updates
instead of parsing them) or, with `--c-clients`, benchmarks/ws_cload.c (built with `cc` at start), which
does the light work in C so that most of a small machine's CPU is left to the gateway. Lean clients give
each update of a frame the latency of the frame's oldest update (an upper bound).

Writes benchmarks/results/ws.json. On a machine with more cores than the gateway is meant to get, pin it
so the load generator cannot starve it (or help it), e.g. `--gateway-cpus 0,1 --client-cpus 2-15
--out benchmarks/results/ws_device.json`: the gateways (and the bare baseline) run on the first set, this
process (the publisher) and the client processes on the second; the report records every affinity.

Baselines in the same run: (b) against benchmarks/ws_bare.py (a bare `websockets` broadcast), and, with
--c-clients, (a) against benchmarks/ws_ideal.c (the least work any gateway can do for (a), in C): if that
misses the target on a machine, no gateway meets it there with the clients on the same cores.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ws_load import client_worker, load_feed, user_filters  # noqa: E402
from cluster.settings import load_settings  # noqa: E402
from gateway.ws.filters import PriceFilter, UpdateView  # noqa: E402
from cluster.ports import free_port  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")




def proc_cpu_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of one process."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(f[11]) / CLK, int(f[12]) / CLK


def cpu_list(spec: str | None) -> set[int] | None:
    """'0,1' or '2-15' or '0,4-7' -> a set of CPU numbers (None stays None: no pinning)."""
    if not spec:
        return None
    cpus: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def cpu_spec(cpus: set[int]) -> str:
    """The inverse of `cpu_list`, for the report: {0, 1, 2, 5} -> '0-2,5'."""
    out, run = [], []
    for c in sorted(cpus):
        if run and c != run[-1] + 1:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(c)
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def affinity(pid: int) -> str | None:
    try:
        return cpu_spec(os.sched_getaffinity(pid))
    except OSError:
        return None


def pinned(cpus: set[int] | None):
    """A `preexec_fn` that pins the child before it execs (None: inherit this process's CPUs)."""
    return None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: array, p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(p / 100 * len(s)))], 1)


def machine() -> dict:
    mem = next((ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")), "0")
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "mem_gb": round(int(mem) / 1024 / 1024, 1),
            "python": platform.python_version(), "kernel": platform.release(),
            "loadavg_at_start": os.getloadavg()}


async def setup(settings) -> str:
    import asyncpg
    import nats

    from cluster.db import migrate
    import uuid

    import redis.asyncio as aioredis

    from cluster.messaging import ensure_streams
    from gateway.auth.live_sessions import publish_session
    from gateway.auth.tokens import TokenService

    await migrate(settings)
    conn = await asyncpg.connect(settings.database_url)
    tid = await conn.fetchval("INSERT INTO tenants (name, plan, ws_limit) VALUES ('bench', 'enterprise', 100000) "
                              "RETURNING id")
    await conn.close()
    nc = await nats.connect(settings.nats_url)
    await ensure_streams(settings, nc.jetstream())
    await nc.close()
    user, sid = str(uuid.uuid4()), str(uuid.uuid4())  # the gateway accepts tokens of live sessions only
    r = aioredis.from_url(settings.redis_url)
    await publish_session(r, settings, sid, user, tid, "user")
    await r.aclose()
    return TokenService(settings).issue(user, "user", str(tid), ttl_s=3600, typ="access", sid=sid)


async def teardown(settings) -> None:
    import asyncpg
    import nats
    import redis.asyncio as aioredis

    from cluster.messaging import delete_streams

    nc = await nats.connect(settings.nats_url)
    await delete_streams(settings, nc.jetstream())
    await nc.close()
    r = aioredis.from_url(settings.redis_url)
    keys = [k async for k in r.scan_iter(match=f"{settings.redis_prefix}*")]
    if keys:
        await r.delete(*keys)
    await r.aclose()
    conn = await asyncpg.connect(settings.database_url.rsplit("/", 1)[0] + "/postgres")
    await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                       settings.database_name)
    await conn.execute(f'DROP DATABASE IF EXISTS "{settings.database_name}"')
    await conn.close()


async def publish(settings, updates: list[dict], rate: float) -> tuple[float, int, int]:
    """Publish at `rate`/s through JetStream with `ts` = publish time; returns (seconds, published, errors)."""
    import nats

    from cluster.messaging import subject

    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream()
    errors = 0
    inflight: set[asyncio.Task] = set()

    async def one(u: dict) -> None:
        nonlocal errors
        body = dict(u, version=1, pricing="on_demand", ts=datetime.now(timezone.utc).isoformat(),
                    old_price=str(u["old_price"]) if u["old_price"] is not None else None, new_price=str(u["new_price"]))
        try:
            await js.publish(subject(settings, "prices", u["provider"], u["gpu_type"]), json.dumps(body).encode())
        except Exception:
            errors += 1

    t0 = time.monotonic()
    for i, u in enumerate(updates):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = asyncio.create_task(one(u))
        inflight.add(t)
        t.add_done_callback(inflight.discard)
    await asyncio.gather(*inflight)
    took = time.monotonic() - t0
    await nc.close()
    return took, len(updates), errors


def expected_deliveries(filters: list[dict], updates: list[dict]) -> int:
    views = [UpdateView({**u, "new_price": str(u["new_price"])}) for u in updates]
    total, cache = 0, {}
    for f in filters:
        key = json.dumps(f, sort_keys=True)
        if key not in cache:
            cf = PriceFilter.model_validate(f).compiled()
            cache[key] = sum(1 for v in views if cf.matches(v))
        total += cache[key]
    return total


def run_scenario(name, settings, token, filters, updates, rate, args, gw_pids) -> dict:
    url = f"ws://127.0.0.1:{settings.ws_port}/v1"
    ctx = mp.get_context("spawn")
    ready_q, result_q, stop_evt = ctx.Queue(), ctx.Queue(), ctx.Event()
    rss0 = sum(proc_rss_mb(p) for p in gw_pids)
    chunks = [filters[i::args.workers] for i in range(args.workers)]
    n_probe = -(-args.probe // args.workers)
    procs = [ctx.Process(target=client_worker, args=(url, token, c, n_probe, ready_q, stop_evt, result_q, i,
                                                     args.light_clients, args.cbin), daemon=True)
             for i, c in enumerate(chunks)]
    t_conn = time.monotonic()
    for p in procs:
        p.start()
    ready = [ready_q.get(timeout=300) for _ in procs]
    connected = sum(r[1] for r in ready)
    connect_s = time.monotonic() - t_conn
    time.sleep(1.0)
    rss1 = sum(proc_rss_mb(p) for p in gw_pids)
    client_affinity = sorted({affinity(p.pid) or "?" for p in procs})
    cpu0 = [sum(x) for x in zip(*(proc_cpu_s(p) for p in gw_pids))]
    t0 = time.monotonic()
    took, published, pub_errors = asyncio.run(publish(settings, updates, rate))
    time.sleep(args.drain_s)
    wall = time.monotonic() - t0
    cpu1 = [sum(x) for x in zip(*(proc_cpu_s(p) for p in gw_pids))]
    stop_evt.set()
    results = [result_q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
    lat, lat_probe = array("f"), array("f")
    tot: dict[str, int] = {}
    for _idx, counts, raw, raw_probe in results:
        lat.frombytes(raw)
        lat_probe.frombytes(raw_probe)
        for k, v in counts.items():
            tot[k] = tot.get(k, 0) + v
    expected = expected_deliveries(filters, updates)
    user_s, sys_s = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    frames = tot.get("frames", 0)
    return {
        "scenario": name, "clients": len(filters), "connected": connected, "connect_s": round(connect_s, 1),
        "updates_published": published, "publish_rate_target": rate, "publish_s": round(took, 1),
        "publish_errors": pub_errors,
        "latency_ms": {"p50": pct(lat + lat_probe, 50), "p95": pct(lat + lat_probe, 95),
                       "p99": pct(lat + lat_probe, 99), "max": pct(lat + lat_probe, 100)},
        "latency_ms_probe_clients": {"clients": min(args.probe, len(filters)), "p50": pct(lat_probe, 50),
                                     "p95": pct(lat_probe, 95), "p99": pct(lat_probe, 99)},
        "delivered": tot.get("delivered", 0), "expected": expected,
        "delivered_ratio": round(tot.get("delivered", 0) / expected, 4) if expected else None,
        "deliveries_per_s": round(tot.get("delivered", 0) / took, 0), "frames": tot.get("frames", 0),
        "lagged_notices": tot.get("lagged", 0), "dropped_for_lag": tot.get("dropped", 0),
        "errors": tot.get("errors", 0) + pub_errors, "reconnects": tot.get("reconnects", 0),
        "duplicates": tot.get("duplicates", 0), "disconnects": tot.get("disconnects", 0),
        "error_kinds": {k: v for k, v in tot.items() if k.startswith("connect_error:")},
        "gateway_cpu_cores": round((user_s + sys_s) / wall, 2),
        "gateway_cpu_user_cores": round(user_s / wall, 2), "gateway_cpu_sys_cores": round(sys_s / wall, 2),
        # What one frame to one client costs the gateway, everything it did in the window included
        # (ingest and matching too): the number that says how many frames/s its cores can carry.
        "gateway_cpu_us_per_frame": round((user_s + sys_s) / frames * 1e6, 2) if frames else None,
        "affinity": {"gateways": sorted({affinity(p) or "?" for p in gw_pids}), "clients": client_affinity,
                     "publisher": affinity(0)},
        "gateway_rss_mb": round(rss1, 1),
        "gateway_kb_per_connection": round((rss1 - rss0) * 1024 / max(1, connected), 1),
    }


def start_bare(settings, cpus: set[int] | None = None) -> subprocess.Popen:
    """The same-run baseline: benchmarks/ws_bare.py on its own port."""
    from cluster.messaging import subject

    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.ws_bare", "--port", str(settings.ws_port),
                             "--nats-url", settings.nats_url, "--subject", subject(settings, "prices") + ".>"],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT, preexec_fn=pinned(cpus))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", settings.ws_port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("bare baseline server did not start")


def start_gateways(settings, n: int, cpus: set[int] | None = None) -> list[subprocess.Popen]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for k, v in settings.model_dump().items():
        if v is not None and v != "":  # an empty setting is refused; lists (trusted_proxies) are read as JSON
            env[f"GPUBROKER_{k.upper()}"] = json.dumps(list(v)) if isinstance(v, (list, tuple)) else str(v)
    procs = [subprocess.Popen([sys.executable, "-m", "gateway.ws.server", "--reuse-port"], env=env, cwd=ROOT,
                              preexec_fn=pinned(cpus)) for _ in range(n)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", settings.ws_port), timeout=1).close()
            time.sleep(2.0)  # let every process bind and follow the stream
            return procs
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gateway did not start")


def build_cclient(into: Path) -> str:
    """Compile benchmarks/ws_cload.c (needs a C compiler: `cc`)."""
    out = into / "ws_cload"
    subprocess.run(["cc", "-O2", "-o", str(out), str(ROOT / "benchmarks" / "ws_cload.c")], check=True)
    return str(out)


def run_ideal(args, into: Path, filters: list[dict], updates: list[dict]) -> dict:
    """Scenario (a) against benchmarks/ws_ideal.c with the same processes, batch window, clients and feed."""
    from types import SimpleNamespace

    from benchmarks.ws_ideal import build_server, run_one, write_inputs

    gpath, upath, expected = write_inputs(into, filters, updates)
    opts = SimpleNamespace(rate=args.rate_a, workers=args.workers, seconds=args.seconds, drain_s=args.drain_s,
                           gateway_cpus=args.gateway_cpus)
    res = asyncio.run(run_one(build_server(into), args.cbin, gpath, upath, filters, expected, args.gateways,
                              int(args.batch_ms), opts))
    return {"scenario": "a_ideal_c_server", "what": "benchmarks/ws_ideal.c: no NATS, no Python, one shared frame "
            "per group and window, one write() per client; the same C clients", **res}


def stop_gateways(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--gateways", type=int, default=2, help="gateway processes sharing the port")
    ap.add_argument("--workers", type=int, default=4, help="client processes")
    ap.add_argument("--rate-a", type=float, default=500.0)
    ap.add_argument("--rate-b", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=20.0, help="publishing time per scenario")
    ap.add_argument("--drain-s", type=float, default=5.0)
    ap.add_argument("--batch-ms", type=float, default=20.0)
    ap.add_argument("--queue-max", type=int, default=64)
    ap.add_argument("--probe", type=int, default=200,
                    help="clients that use gpubroker.stream.PriceStreamClient (the rest: a minimal loadgen client)")
    ap.add_argument("--a-small", type=int, default=1000,
                    help="also run scenario (a) with this many clients (0: skip): where this machine keeps up")
    ap.add_argument("--only", choices=["a", "b", "baseline"], default=None)
    ap.add_argument("--light-clients", action="store_true",
                    help="lean clients count updates instead of parsing them (latency: each frame's oldest update)")
    ap.add_argument("--c-clients", action="store_true",
                    help="run the lean connections in the C client (benchmarks/ws_cload.c, built with cc at start): "
                         "same work as --light-clients at a fraction of the CPU, so the gateway keeps the cores")
    ap.add_argument("--no-ideal", action="store_true",
                    help="with --c-clients, skip the same-run baseline of scenario (a): benchmarks/ws_ideal.c, the "
                         "least work any gateway can do (C, shared frames, no NATS or Python), on the same clients")
    ap.add_argument("--gateway-cpus", default=None, help="pin the gateway processes (and the bare baseline), e.g. 0,1")
    ap.add_argument("--client-cpus", default=None,
                    help="pin this process (publisher) and the client processes, e.g. 2-15")
    ap.add_argument("--nats-pid", type=int, default=None,
                    help="the NATS server's pid, only to record its CPU affinity (pin it yourself with taskset)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/ws.json"))
    args = ap.parse_args()
    gw_cpus, client_cpus = cpu_list(args.gateway_cpus), cpu_list(args.client_cpus)
    if gw_cpus is None and client_cpus is not None:
        gw_cpus = os.sched_getaffinity(0)  # the gateways keep every CPU rather than inherit the clients'
    if client_cpus is not None:
        os.sched_setaffinity(0, client_cpus)  # the client processes inherit it
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    tag = "b" + secrets.token_hex(3)
    state = Path(tempfile.mkdtemp(prefix=f"gpubroker-{tag}-"))
    settings = load_settings(database_url=f"postgresql://postgres@127.0.0.1:5432/gpubroker_{tag}",
                             redis_prefix=f"{tag}:", nats_prefix=f"{tag}.", ws_port=free_port(), state_dir=state,
                             log_level="WARNING", ws_batch_ms=args.batch_ms, ws_queue_max=args.queue_max)
    report = {"benchmark": "ws", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
              "config": {k: getattr(args, k) for k in ("clients", "gateways", "workers", "rate_a", "rate_b", "seconds",
                                                        "drain_s", "batch_ms", "queue_max", "probe", "a_small",
                                                        "light_clients", "c_clients")},
              "baseline": {"what": "scenario (b) against benchmarks/ws_bare.py (one bare websockets broadcast "
                                   "process) in this run; RAY_NOTES.md measured 5,000 clients p95 262 ms",
                           "broadcast_5000_p95_ms_ray_notes": 262},
              "targets": {"a_p95_ms": 100, "b_p95_ms": 250}, "scenarios": {}}
    report["config"].update(gateway_cpus=args.gateway_cpus, client_cpus=args.client_cpus,
                            nats_cpus=affinity(args.nats_pid) if args.nats_pid else None)
    args.cbin = build_cclient(state) if args.c_clients else None
    token = asyncio.run(setup(settings))
    gws: list[subprocess.Popen] = []

    def fresh_gateways() -> list[int]:
        """New gateway processes for each scenario: memory per connection is measured from an idle start
        (a process that served the previous scenario keeps its freed memory)."""
        stop_gateways(gws)
        gws[:] = start_gateways(settings, args.gateways, gw_cpus)
        return [p.pid for p in gws]

    try:
        if args.only in (None, "b"):
            n_b = max(1, int(args.rate_b * args.seconds))
            res = run_scenario("b_broadcast", settings, token, [{}] * args.clients, load_feed(n_b), args.rate_b,
                               args, fresh_gateways())
            report["scenarios"]["b"] = res
            print(json.dumps(res, indent=2), flush=True)
        if args.only in (None, "a"):
            n_a = int(args.rate_a * args.seconds)
            points = [("a", args.clients)] + ([("a_small", args.a_small)] if args.a_small else [])
            for key, n in points:
                time.sleep(5)  # let the previous scenario's connections close
                res = run_scenario(f"a_user_filters_{n}", settings, token, user_filters(n), load_feed(n_a),
                                   args.rate_a, args, fresh_gateways())
                report["scenarios"][key] = res
                print(json.dumps(res, indent=2), flush=True)
            if args.c_clients and not args.no_ideal:
                time.sleep(5)
                res = run_ideal(args, state, user_filters(args.clients), load_feed(n_a))
                report["scenarios"]["a_ideal_c"] = res
                a = report["scenarios"].get("a")
                if a and a["latency_ms"]["p95"] and res["latency_ms"]["p95"]:
                    report["a_p95_ratio_gateway_over_ideal"] = round(a["latency_ms"]["p95"] / res["latency_ms"]["p95"], 2)
                print(json.dumps(res, indent=2), flush=True)
        if args.only in (None, "baseline"):
            time.sleep(5)
            bare_settings = settings.with_overrides(ws_port=free_port())
            bare = start_bare(bare_settings, gw_cpus)
            try:
                n_b = max(1, int(args.rate_b * args.seconds))
                res = run_scenario("b_broadcast_bare_baseline", bare_settings, token, [{}] * args.clients,
                                   load_feed(n_b), args.rate_b, args, [bare.pid])
            finally:
                bare.terminate()
                bare.wait(10)
            report["scenarios"]["b_baseline_bare"] = res
            b = report["scenarios"].get("b")
            if b and b["latency_ms"]["p95"] and res["latency_ms"]["p95"]:
                report["b_p95_ratio_gateway_over_bare"] = round(b["latency_ms"]["p95"] / res["latency_ms"]["p95"], 3)
            print(json.dumps(res, indent=2), flush=True)
    finally:
        stop_gateways(gws)
        asyncio.run(teardown(settings))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
