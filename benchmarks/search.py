"""Benchmark GET /providers through the real Serve HTTP path against a plain uvicorn app, same data, same run.

    PYTHONPATH=. .venv/bin/python benchmarks/search.py [--offers 100000] [--duration 8]

Loads >= 100,000 offers (real GCP and Shadeform rows, replicated) into its own database, deploys the Serve
application (throughput mode: HAProxy + direct ingress), and drives it from a separate load-generator process:
(a) closed loop at 50 and 200 connections, (b) open loop at 500 req/s with the realistic (cacheable) mix and
with never-repeated queries (uncached), (c) the cache hit rate from /metrics, (d) the same closed and open
loops against a plain uvicorn + FastAPI process over the same index; plus 10,000-row exports.
Writes benchmarks/results/search.json. Bounded: about 2 minutes.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import random
import re
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

from benchmarks.search_data import load, query_mix  # noqa: E402
from cluster.settings import Settings, load_settings  # noqa: E402
from cluster.ports import free_port as _free_port  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "search.json"




def bench_settings(state_dir: Path) -> Settings:
    overrides = {}
    for name, f in Settings.model_fields.items():  # generous per-IP/tenant limits if a limiter exists
        if f.annotation in (int, float) and ("rate_limit" in name or name.endswith("_rps") or name.endswith("burst")):
            overrides[name] = 1_000_000
    for name in ("haproxy_stats_port", "haproxy_metrics_port"):  # never collide with another Serve on this machine
        if name in Settings.model_fields:
            overrides[name] = _free_port()
    return load_settings(database_url="postgresql://postgres@127.0.0.1:5432/gpubroker_bench_search",
                         redis_prefix="bench-search:", nats_prefix="benchsearch.", http_port=_free_port(),
                         state_dir=state_dir, ingress_replicas_min=1, ingress_replicas_max=1,
                         search_replicas_max=1, log_level="WARNING", **overrides)


async def prepare_db(settings: Settings, n: int) -> int:
    from cluster.db import migrate

    await migrate(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        have = await conn.fetchval("SELECT count(*) FROM offers")
        if have >= n:
            return int(have)
        return await load(conn, n)
    finally:
        await conn.close()


async def clear_cache(settings: Settings) -> None:
    import redis.asyncio as aioredis

    r = aioredis.from_url(settings.redis_url)
    keys = [k async for k in r.scan_iter(match=settings.redis_prefix + "*")]
    if keys:
        await r.delete(*keys)
    await r.aclose()


def loadgen(base: str, paths: Path, mode: str, duration: float, conns: int = 50, rate: float = 500) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.loadgen", "--base", base, "--paths", str(paths), "--mode", mode,
           "--conns", str(conns), "--rate", str(rate), "--duration", str(duration)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr[-1000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"    {mode:6s} conns={conns if mode == 'closed' else '-':>4} rate={rate if mode == 'open' else '-':>5}: "
          f"{json.dumps({k: v for k, v in result.items() if k not in ('mode',)})}", flush=True)
    return result


def cache_counts(base: str) -> tuple[float, float]:
    text = httpx.get(base + "/metrics", timeout=10).text

    def total(name: str) -> float:
        return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))
    return total("gpubroker_search_cache_hits_total"), total("gpubroker_search_cache_misses_total")


def hit_rate(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    hits, misses = after[0] - before[0], after[1] - before[1]
    return round(hits / (hits + misses), 4) if hits + misses else None


def wait_http(url: str, timeout: float, ok=lambda r: r.status_code == 200) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ok(httpx.get(url, timeout=5)):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def export_timings(base: str) -> dict:
    out = {}
    for fmt in ("csv", "json"):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            r = httpx.get(f"{base}/providers/export", params={"format": fmt}, timeout=30)
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200 and r.headers["x-export-rows"] == "10000", r.text[:300]
        out[fmt] = {"rows": 10000, "bytes": len(r.content), "best_s": round(min(times), 3), "worst_s": round(max(times), 3)}
    return out


def write_paths(d: Path, n_distinct: int = 400) -> tuple[Path, Path]:
    rnd = random.Random(1)
    distinct = [query_mix(rnd) for _ in range(n_distinct)]
    weights = [1 / (i + 1) for i in range(len(distinct))]  # Zipf-like popularity
    mixed = rnd.choices(distinct, weights, k=20000)
    cached, uncached = d / "paths_mixed.txt", d / "paths_unique.txt"
    cached.write_text("\n".join(mixed) + "\n")
    uncached.write_text("\n".join(query_mix(rnd, unique=True) for _ in range(60000)) + "\n")
    return cached, uncached


@contextlib.contextmanager
def local_serve(settings: Settings):
    """A local Ray with Serve for one measurement; Serve, Ray and Serve's HAProxy are stopped after it."""
    import ray
    from ray import serve

    from cluster.control import haproxy_pids
    from cluster.ray_env import ray_env

    os.environ.update(ray_env(settings))
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="bench-search",
             _node_ip_address="127.0.0.1", log_to_driver=False, logging_level="WARNING")
    try:
        yield f"http://127.0.0.1:{settings.http_port}"
    finally:
        try:
            serve.shutdown()
        except Exception:
            pass
        ray.shutdown()
        for pid in haproxy_pids(settings.http_port):
            os.kill(pid, 15)


def run_serve(settings: Settings, mixed: Path, unique: Path, duration: float, n: int) -> dict:
    from deployments.app import deploy

    with local_serve(settings) as base:
        t0 = time.monotonic()
        deploy(settings)
        wait_http(f"{base}/providers?page_size=1", 180, lambda r: r.status_code == 200 and r.json()["total"] >= n)
        res: dict = {"deploy_and_index_s": round(time.monotonic() - t0, 1)}
        print(f"  Serve ready in {res['deploy_and_index_s']}s", flush=True)
        loadgen(base, mixed, "closed", 3, conns=50)  # warm-up (fills the caches)
        before = cache_counts(base)
        res["closed_50"] = loadgen(base, mixed, "closed", duration, conns=50)
        res["closed_200"] = loadgen(base, mixed, "closed", duration, conns=200)
        res["open_500_cached"] = loadgen(base, mixed, "open", duration, rate=500)
        res["cache_hit_rate_mixed"] = hit_rate(before, cache_counts(base))
        before = cache_counts(base)
        res["open_500_uncached"] = loadgen(base, unique, "open", duration, rate=500)
        res["cache_hit_rate_unique"] = hit_rate(before, cache_counts(base))
        res["closed_50_uncached"] = loadgen(base, unique, "closed", duration, conns=50)
        res["export_10k"] = export_timings(base)
        print(f"  export: {res['export_10k']}", flush=True)
        return res


def compare_handle(settings: Settings, mixed: Path, duration: float, n: int) -> dict:
    """The design check: the index inside the ingress vs one Serve handle hop to the Search deployment."""
    from deployments.app import deploy

    prefixed = mixed.with_name("paths_handle.txt")
    prefixed.write_text("".join("/h" + line + "\n" for line in mixed.read_text().split()))
    with local_serve(settings) as base:
        deploy(settings)
        via_handle = settings.with_overrides(search_in_ingress=False)
        deploy(via_handle, "gpubroker-handle", "/h")
        for prefix in ("", "/h"):
            wait_http(f"{base}{prefix}/providers?page_size=1", 180, lambda r: r.status_code == 200 and r.json()["total"] >= n)
        loadgen(base, mixed, "closed", 2, conns=50)
        loadgen(base, prefixed, "closed", 2, conns=50)
        return {"in_ingress": loadgen(base, mixed, "closed", duration, conns=50),
                "via_handle": loadgen(base, prefixed, "closed", duration, conns=50)}


def run_plain(settings: Settings, mixed: Path, unique: Path, duration: float) -> dict:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.search_plain", "--database-url", settings.database_url,
                             "--port", str(port)], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        wait_http(f"{base}/health", 120)
        loadgen(base, mixed, "closed", 2, conns=50)
        return {"closed_50": loadgen(base, mixed, "closed", duration, conns=50),
                "closed_200": loadgen(base, mixed, "closed", duration, conns=200),
                "open_500": loadgen(base, mixed, "open", duration, rate=500),
                "open_500_unique": loadgen(base, unique, "open", duration, rate=500)}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    return {"host": platform.node(), "cpus": os.cpu_count(), "cpu_model": cpu, "python": platform.python_version(),
            "load_avg_at_start": os.getloadavg(), "note": "2-core machine; the load average says how busy it was"}


def _max_ongoing(settings) -> int:
    """The ingress's max_ongoing_requests in the deployed Serve config (the file, or the setting over it)."""
    from cluster.serve_config import serve_config

    (app,) = serve_config(settings)["applications"]
    return next(d["max_ongoing_requests"] for d in app["deployments"] if d["name"] == "Ingress")


def main() -> int:
    import argparse

    import ray

    ap = argparse.ArgumentParser()
    ap.add_argument("--offers", type=int, default=100_000)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--handle-only", action="store_true",
                    help="only compare the in-ingress index with the Search deployment handle hop")
    args = ap.parse_args()
    state = Path(tempfile.mkdtemp(prefix="bench-search-"))
    settings = bench_settings(state)
    if args.handle_only:
        n = asyncio.run(prepare_db(settings, args.offers))
        mixed, _ = write_paths(state)
        res = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
               "offers": n, **compare_handle(settings, mixed, args.duration, n)}
        out_file = RESULTS.with_name("search_handle.json")
        out_file.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {out_file}")
        return 0
    out: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
                 "ray": ray.__version__, "settings": {"throughput_mode": settings.throughput_mode,
                                                      "search_in_ingress": settings.search_in_ingress,
                                                      "ingress_replicas": 1, "max_ongoing_requests": _max_ongoing(settings)}}
    t0 = time.monotonic()
    out["offers"] = asyncio.run(prepare_db(settings, args.offers))
    print(f"offers in database: {out['offers']} ({time.monotonic() - t0:.1f}s)", flush=True)
    asyncio.run(clear_cache(settings))
    mixed, unique = write_paths(state)
    print("Serve (real HTTP path):", flush=True)
    out["serve"] = run_serve(settings, mixed, unique, args.duration, out["offers"])
    print("plain uvicorn + FastAPI:", flush=True)
    out["plain"] = run_plain(settings, mixed, unique, args.duration)
    s, p = out["serve"], out["plain"]
    peak_serve = max(s["closed_50"]["rps"], s["closed_200"]["rps"])
    peak_plain = max(p["closed_50"]["rps"], p["closed_200"]["rps"])
    out["ratio_peak_rps_serve_over_plain"] = round(peak_serve / peak_plain, 3)
    out["targets"] = {
        "open_500_cached_p95_le_20ms": s["open_500_cached"]["p95_ms"] <= 20 and s["open_500_cached"]["errors"] == 0,
        "open_500_uncached_p95_le_50ms": s["open_500_uncached"]["p95_ms"] <= 50 and s["open_500_uncached"]["errors"] == 0,
        "peak_ge_half_plain": out["ratio_peak_rps_serve_over_plain"] >= 0.5,
        "export_10k_le_1s": max(v["best_s"] for v in s["export_10k"].values()) <= 1.0,
    }
    out["total_s"] = round(time.monotonic() - t0, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({"ratio_peak_rps_serve_over_plain": out["ratio_peak_rps_serve_over_plain"],
                      "cache_hit_rate_mixed": s["cache_hit_rate_mixed"], "targets": out["targets"]}, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
