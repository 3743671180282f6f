"""Price history routes on the full bundled history: GET /prices/history and GET /providers/{id}/history.

    PYTHONPATH=. python benchmarks/history.py [--repeat 50]

Loads every bundled snapshot and the GCP price-change log (2022-02 .. 2026-01) into its own database
(created and dropped), then times the real routes in process (the FastAPI app over httpx's ASGI
transport, so no network or Serve hop is counted) for the widest ranges they allow. Baseline in the same
run: the obvious implementation, every matching row fetched and grouped with a median in Python.
Writes benchmarks/results/history.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "history.json"
QUERIES = {  # the widest answers: every H100 / A100 series over the whole log, by week; 400 days by day
    "h100_weeks_4y": {"gpu_type": "H100", "bucket": "week", "from": "2022-01-01", "to": "2026-02-01"},
    "a100_weeks_4y": {"gpu_type": "A100", "bucket": "week", "from": "2022-01-01", "to": "2026-02-01"},
    "a100_days_400": {"gpu_type": "A100", "bucket": "day", "from": "2024-12-27", "to": "2026-01-31"},
}


def _machine() -> dict:
    return {"hostname": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "load_average_at_start": os.getloadavg()}


def _pct(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"p50_ms": round(s[len(s) // 2] * 1000, 2), "p95_ms": round(s[int(len(s) * 0.95) - 1] * 1000, 2),
            "max_ms": round(s[-1] * 1000, 2)}


async def _naive(pool, gpus: list[str], start: datetime, end: datetime, bucket: str) -> int:
    rows = await pool.fetch(
        "SELECT o.provider_id, o.region, o.pricing, h.recorded_at, h.price_per_hour::float8 AS p FROM offers o "
        "JOIN price_history h ON h.offer_id = o.id WHERE o.gpu_type = ANY($1) AND h.recorded_at >= $2 "
        "AND h.recorded_at < $3", gpus, start, end)
    groups: dict = defaultdict(list)
    for r in rows:
        ts = r["recorded_at"]
        key = ts.date() if bucket == "day" else ts.isocalendar()[:2]
        groups[(r["provider_id"], r["region"], r["pricing"], key)].append(r["p"])
    return len([(min(v), statistics.median(v), max(v)) for v in groups.values()])


async def run(repeat: int) -> dict:
    import asyncpg
    import httpx

    from actors.catalog import backfill_gcp_history, load_catalog
    from actors.cli import _ingestor
    from cluster.runtime import Runtime
    from cluster.settings import load_settings
    from deployments.ingress import create_app
    from domain.gpus import matching_gpus

    tag = "hist" + secrets.token_hex(3)
    base = load_settings()
    settings = base.with_overrides(database_url=base.database_url.rsplit("/", 1)[0] + f"/gpubroker_{tag}",
                                   redis_prefix=f"{tag}:", nats_prefix=f"{tag}.")
    out: dict = {"date": datetime.now(timezone.utc).isoformat(), "machine": _machine(), "repeat": repeat}
    try:
        async with _ingestor(settings, need_nats=False) as ing:
            await load_catalog(ing)
            out["gcp_history_rows_added"] = await backfill_gcp_history(ing.pool)
        rt = await Runtime(settings).start()
        try:
            pool = await rt.get_pg()
            out["offers"] = await pool.fetchval("SELECT count(*) FROM offers")
            out["history_rows"] = await pool.fetchval("SELECT count(*) FROM price_history")
            app = create_app(rt)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
                routes = {}
                for name, params in QUERIES.items():
                    body = (await http.get("/prices/history", params=params)).json()
                    samples = []
                    for _ in range(repeat):
                        t0 = time.perf_counter()
                        r = await http.get("/prices/history", params=params)
                        samples.append(time.perf_counter() - t0)
                        assert r.status_code == 200, r.text
                    naive = []
                    start, end = (datetime.fromisoformat(params[k]).replace(tzinfo=timezone.utc) for k in ("from", "to"))
                    for _ in range(repeat):
                        t0 = time.perf_counter()
                        await _naive(pool, matching_gpus(params["gpu_type"]), start, end, params["bucket"])
                        naive.append(time.perf_counter() - t0)
                    routes[name] = {"series": len(body["series"]),
                                    "buckets": sum(len(s["points"]) for s in body["series"]),
                                    "points": sum(p["samples"] for s in body["series"] for p in s["points"]),
                                    "route": _pct(samples), "naive_python_baseline": _pct(naive)}
                oid = await pool.fetchval("SELECT offer_id FROM price_history GROUP BY offer_id ORDER BY count(*) DESC "
                                          "LIMIT 1")
                walk, pages, points = [], 0, 0
                for _ in range(max(1, repeat // 5)):
                    cursor, t0 = None, time.perf_counter()
                    pages = points = 0
                    while True:
                        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
                        page = (await http.get(f"/providers/{oid}/history", params=params)).json()
                        pages, points = pages + 1, points + len(page["items"])
                        cursor = page["next_cursor"]
                        if cursor is None:
                            break
                    walk.append((time.perf_counter() - t0) / pages)
                routes["offer_history_page_of_100"] = {"offer_points": points, "pages": pages, "route": _pct(walk)}
                out["routes"] = routes
        finally:
            await rt.close()
    finally:
        conn = await asyncpg.connect(base.database_url.rsplit("/", 1)[0] + "/postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{settings.database_name}" WITH (FORCE)')
        finally:
            await conn.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=50, help="requests per query")
    args = ap.parse_args()
    out = asyncio.run(run(args.repeat))
    RESULTS.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
