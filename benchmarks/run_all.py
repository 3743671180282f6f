"""Run every benchmark, one subprocess each with a time bound, then write benchmarks/results/summary.md: one
table with each benchmark's key figures, its baseline (measured in the same run), their ratio, the date,
machine and load of that run.

    PYTHONPATH=. .venv/bin/python benchmarks/run_all.py [--only load,search] [--skip mutation] [--summary-only]

`--summary-only` writes the table from the results already in benchmarks/results/ (each row keeps the date and
load of the run that produced it). A benchmark that fails or runs out of time keeps its previous results;
its row says so.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def _g(d: Any, *path: str, default: Any = None) -> Any:
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def _ratio(a: Any, b: Any) -> str:
    try:
        return f"{float(a) / float(b):.2f}"
    except (TypeError, ValueError, ZeroDivisionError):
        return "-"


# --- key figures per results file: (figures, baseline, ratio) ---------------------------------------------------
def _search(d: dict) -> tuple[str, str, str]:
    s, p = d["serve"], d["plain"]
    peak = max(s["closed_50"]["rps"], s["closed_200"]["rps"])
    base = max(p["closed_50"]["rps"], p["closed_200"]["rps"])
    return (f"{d['offers']:,} offers: peak {peak:,.0f} req/s; open 500/s p95 {s['open_500_cached']['p95_ms']} ms cached, "
            f"{s['open_500_uncached']['p95_ms']} ms uncached; hit rate {s['cache_hit_rate_mixed']}",
            f"plain uvicorn {base:,.0f} req/s", _ratio(peak, base))


def _search_handle(d: dict) -> tuple[str, str, str]:
    a, b = d["in_ingress"], d["via_handle"]
    return (f"index in ingress {a['rps']} req/s, p95 {a['p95_ms']} ms", f"via a deployment handle {b['rps']} req/s",
            _ratio(a["rps"], b["rps"]))


def _ingest(d: dict) -> tuple[str, str, str]:
    return (f"{d['sustained_records_per_min']:,} records/min sustained ({d['rows']:,} rows)",
            f"spec {d['baselines']['spec_records_per_min']:,}/min; row-by-row "
            f"{d['baselines']['naive_row_by_row_same_work_first_load']['records_per_min']:,}/min",
            f"{d['vs_spec']} x spec")


def _ratelimit(d: dict) -> tuple[str, str, str]:
    a, lat = d["accuracy"], d["latency"]
    return (f"{a['tenants']} tenants: admitted {a['admitted_rps_per_tenant']['mean']}/s of {a['configured_rps_per_tenant']}"
            f" (within 5 %: {a['tenants_within_5pct']}); added p99 {lat['added_by_limiter_p99_ms']} ms",
            f"app without limiter p99 {lat['baseline_app']['p99_ms']} ms",
            _ratio(a["aggregate_admitted_rps"], a["aggregate_configured_rps"]) + " of configured")


def _ws(d: dict) -> tuple[str, str, str]:
    a, b = d["scenarios"]["a"], d["scenarios"]["b"]
    return (f"{a['clients']:,} clients: filtered p95 {_g(a, 'latency_ms', 'p95')} ms, "
            f"broadcast p95 {_g(b, 'latency_ms', 'p95')} ms",
            "ideal C server / bare websockets (same run)",
            f"{d.get('a_p95_ratio_gateway_over_ideal')} / {d.get('b_p95_ratio_gateway_over_bare')}")


def _bookings(d: dict) -> tuple[str, str, str]:
    a, o = d["accept"], d["outcome"]
    base = _g(d, "baseline_plain_transactions", "p95_ms")
    return (f"{a['n']:,} bookings: accept p95 {a['p95_ms']} ms ({a['bookings_per_s']}/s); to Active p95 "
            f"{o['time_to_active_p95_s']} s; lost {o['lost_bookings']}, duplicated {o['duplicate_transitions']}",
            f"plain transactions p95 {base} ms" if base else "see bookings.json", _ratio(a["p95_ms"], base))


def _forecast(d: dict) -> tuple[str, str, str]:
    s = d.get("serve", {})
    t, b = s.get("trained_20", {}), s.get("persistence_baseline_20", {})
    return (f"/predict at 20 conns: p95 {t.get('p95_ms')} ms, {t.get('rps')} req/s",
            f"persistence app p95 {b.get('p95_ms')} ms", _ratio(t.get("p95_ms"), b.get("p95_ms")))


def _chat(d: dict) -> tuple[str, str, str]:
    r = d["results"]
    return (f"POST /ai/chat p95 {r['local_users_8']['p95_ms']} ms at 8 users; extractor "
            f"{d['extractor']['test_set']['exact_match_rate']:.0%} exact",
            f"LLM off p95 {r['llm_off_users_8']['p95_ms']} ms", _ratio(r["local_users_8"]["p95_ms"], r["llm_off_users_8"]["p95_ms"]))


def _faults(d: dict) -> tuple[str, str, str]:
    deps = d["dependencies"]
    rec = ", ".join(f"{k} {v['all_routes_after_s']} s" for k, v in deps.items())
    return (f"recovery (all routes): {rec}; 500s {d['totals']['answers_500']}", "goal: 0 500s, <= 2 s", "-")


def _history(d: dict) -> tuple[str, str, str]:
    r = d["routes"]["a100_weeks_4y"]
    return (f"/prices/history 4 years of weeks p95 {r['route']['p95_ms']} ms",
            f"rows grouped in Python p95 {r['naive_python_baseline']['p95_ms']} ms",
            _ratio(r["route"]["p95_ms"], r["naive_python_baseline"]["p95_ms"]))


def _mutation(d: dict) -> tuple[str, str, str]:
    m = d["domain"]
    return (f"domain/ mutation score {m['score']} ({m['killed']}/{m['considered']})", f"goal {m['goal']}",
            _ratio(m["score"], m["goal"]))


def _load(d: dict) -> tuple[str, str, str]:
    stages = d.get("stages") or [{"users": d["overall"]["concurrent_users_http"], "routes": d["routes"],
                                  "overall": d["overall"]}]
    parts = []
    for st in stages:
        o, r = st["overall"], st["routes"]
        over = [k for k, v in r.items() if v["within_budget"] is False]
        parts.append(f"{st['users']:,} users: {o['rate_per_s']} req/s, errors {o['error_rate']:.2%}, search p95 "
                     f"{r['search']['p95_ms']} ms" + (f" (over budget: {', '.join(over)})" if over else ""))
    ws = d.get("websocket", {})
    return ("; ".join(parts) + f"; {ws.get('connected', 0):,} WS subscribers, p95 {ws.get('ingest_to_client_p95_ms')} ms",
            "spec: 10,000 users, <= 5 % errors", "-")


# name -> (command after `python`, timeout s, results file, figures)
BENCHMARKS: dict[str, tuple[list[str], int, str, Callable[[dict], tuple[str, str, str]]]] = {
    "search": (["benchmarks/search.py"], 600, "search.json", _search),
    "search_handle": (["benchmarks/search.py", "--handle-only"], 400, "search_handle.json", _search_handle),
    "ingest": (["benchmarks/ingest.py"], 900, "ingest.json", _ingest),
    "ratelimit": (["benchmarks/ratelimit.py"], 600, "ratelimit.json", _ratelimit),
    "ws": (["benchmarks/ws.py", "--c-clients"], 900, "ws.json", _ws),
    "bookings": (["benchmarks/bookings.py"], 900, "bookings.json", _bookings),
    "forecast": (["benchmarks/forecast.py", "--skip-eval"], 900, "forecast.json", _forecast),
    "chat": (["benchmarks/chat.py"], 900, "chat.json", _chat),
    "faults": (["benchmarks/faults.py"], 600, "faults.json", _faults),
    "history": (["benchmarks/history.py"], 600, "history.json", _history),
    "load": (["benchmarks/load.py"], 1200, "load.json", _load),
    "mutation": (["benchmarks/mutation.py"], 3600, "mutation.json", _mutation),
}


def _when_and_where(d: dict) -> tuple[str, str, str]:
    m = d.get("machine", {})
    load = next((m[k] for k in ("load_avg_at_start", "loadavg_at_start", "load_average_at_start") if k in m), None)
    load = load or _g(d, "resources", "load_avg_before") or m.get("loadavg_1m_at_end")
    load_s = f"{load[0]:.1f}" if isinstance(load, list) else (f"{load:.1f}" if isinstance(load, (int, float)) else "?")
    cpu = m.get("cpu_model") or m.get("cpu") or ""
    return str(d.get("date", "?"))[:16].replace("T", " "), f"{m.get('cpus', '?')} cores {cpu}".strip(), load_s


def run(name: str) -> str:
    cmd, timeout, _, _ = BENCHMARKS[name]
    log = RESULTS / f"{name}.log"
    t0 = time.monotonic()
    with open(log, "w") as f:
        try:
            rc = subprocess.run([sys.executable, *cmd], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=timeout,
                                env={**os.environ, "PYTHONPATH": str(ROOT)}).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    status = "ok" if rc == 0 else f"failed ({rc})"
    print(f"{name}: {status} in {time.monotonic() - t0:.0f} s (log: {log.relative_to(ROOT)})", flush=True)
    return status


def summary(statuses: dict[str, str]) -> str:
    lines = ["# Benchmark summary", "",
             f"Written {datetime.now(timezone.utc).isoformat(timespec='minutes')} on {platform.node()} "
             f"({os.cpu_count()} cores); load average now {os.getloadavg()[0]:.1f}. Each row is the latest run of that "
             "benchmark: its own date, machine and load average at its start (this machine is shared; a high load "
             "means other work competed for the cores). Details in the JSON file of each row.", "",
             "| benchmark | key figures | baseline (same run) | ratio | date (UTC) | machine | load | file |",
             "|---|---|---|---|---|---|---|---|"]
    for name, (_, _, file, fig) in BENCHMARKS.items():
        path = RESULTS / file
        if not path.exists():
            lines.append(f"| {name} | no results yet {statuses.get(name, '')} | | | | | | |")
            continue
        d = json.loads(path.read_text())
        try:
            figures, baseline, ratio = fig(d)
        except (KeyError, TypeError, IndexError) as exc:
            figures, baseline, ratio = f"see {file} ({type(exc).__name__}: {exc})", "", ""
        if name in statuses and statuses[name] != "ok":
            figures = f"**this run {statuses[name]}; previous results:** " + figures
        date, mach, load = _when_and_where(d)
        lines.append(f"| {name} | {figures} | {baseline} | {ratio} | {date} | {mach} | {load} | `{file}` |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--skip", default="", help="comma-separated benchmark names")
    ap.add_argument("--summary-only", action="store_true")
    args = ap.parse_args()
    names = [n for n in (args.only.split(",") if args.only else BENCHMARKS) if n and n not in args.skip.split(",")]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmarks: {unknown}; known: {list(BENCHMARKS)}")
    statuses = {} if args.summary_only else {n: run(n) for n in names}
    out = RESULTS / "summary.md"
    out.write_text(summary(statuses))
    print(out.read_text())
    return 0 if all(s == "ok" for s in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
