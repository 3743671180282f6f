"""Load pieces of the WebSocket benchmark: the replayed marketplace feed, user-like subscriptions, and the
client worker process (many `PriceStreamClient` connections per process)."""
from __future__ import annotations

import asyncio
import csv
import random
import resource
import time
import uuid
from array import array
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

FEED_CSV = Path("/work/shared/data/primeintellect_marketplace_tugot17/by_provider.csv")
# The marketplace feed has no regions: each offer gets one, stable per (provider, gpu).
REGIONS = ["us-east-1", "us-west-2", "us-central1", "eu-west-1", "eu-central-1", "europe-west4", "ca-central-1",
           "asia-northeast1", "australia-southeast1", "eu-north1"]
FAMILIES = {"A100": ["A100", "A100 PCIe", "A100 SXM"], "H100": ["H100", "H100 SXM", "H100 PCIe"],
            "H200": ["H200"], "B200": ["B200"], "GH200": ["GH200"]}


def load_feed(limit: int) -> list[dict[str, Any]]:
    """Price updates replayed from the recorded marketplace (snapshot order); old_price is the offer's last price."""
    with open(FEED_CSV, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["timestamp"])
    last: dict[tuple[str, str, str], Decimal] = {}
    ids: dict[tuple[str, str, str], str] = {}
    out: list[dict[str, Any]] = []
    rng = random.Random(11)
    while len(out) < limit:
        for r in rows:
            gpu = r["gpu_type"] + (f"_{r['socket_type']}" if r["socket_type"] else "")
            region = REGIONS[sum(map(ord, r["provider"] + gpu)) % len(REGIONS)]
            key = (r["provider"], gpu, region)
            price = Decimal(r["min"]) * (Decimal(1) + Decimal(rng.randint(-30, 30)) / 1000)
            price = price.quantize(Decimal("0.0001"))
            ids.setdefault(key, str(uuid.uuid4()))
            out.append({"offer_id": ids[key], "external_id": f"{r['provider']}:{gpu}:{region}", "provider": r["provider"],
                        "gpu_type": gpu, "region": region, "old_price": last.get(key), "new_price": price,
                        "availability": "up" if int(r["count"]) > 0 else "down"})
            last[key] = price
            if len(out) >= limit:
                break
    return out


def user_filters(n: int, seed: int = 5) -> list[dict[str, Any]]:
    """Subscriptions like real users': one or two GPU types, sometimes a region/continent or a price cap."""
    rng = random.Random(seed)
    fams = list(FAMILIES)
    caps = {"A100": 1.6, "H100": 2.5, "H200": 3.5, "B200": 5.0, "GH200": 2.0}
    out = []
    for _ in range(n):
        chosen = rng.sample(fams, 2 if rng.random() < 0.3 else 1)
        f: dict[str, Any] = {"gpu_type": [rng.choice(FAMILIES[c]) for c in chosen]}
        x = rng.random()
        if x < 0.15:
            f["continent"] = rng.choice(["NA", "EU"])
        elif x < 0.25:
            f["region"] = rng.sample(REGIONS, 2)
        if rng.random() < 0.3:
            f["max_price"] = round(caps[chosen[0]] * rng.uniform(0.8, 1.3), 2)
        out.append(f)
    return out


def _ts(v: str) -> float:
    return datetime.fromisoformat(v).timestamp()


def client_worker(url: str, token: str, filters: list[dict], ready_q, stop_evt, result_q, idx: int) -> None:
    """One process holding len(filters) connections; reports latencies (ms) and counts when told to stop."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_worker(url, token, filters, ready_q, stop_evt, result_q, idx))


async def _worker(url, token, filters, ready_q, stop_evt, result_q, idx) -> None:
    from gateway.client import PriceStreamClient

    lat = array("f")
    counts = {"delivered": 0, "frames": 0, "lagged": 0, "dropped": 0, "errors": 0, "duplicates": 0}
    clients: list[PriceStreamClient] = []

    def on_updates(updates: list[dict]) -> None:
        now = time.time()
        counts["frames"] += 1
        counts["delivered"] += len(updates)
        for u in updates:
            lat.append((now - _ts(u["ts"])) * 1000)

    def on_event(ev: dict) -> None:
        t = ev.get("type")
        if t == "lagged":
            counts["lagged"] += 1
            counts["dropped"] += ev.get("dropped", 0)
        elif t == "error":
            counts["errors"] += 1

    sem = asyncio.Semaphore(50)
    tasks = []

    async def run_one(c: PriceStreamClient) -> None:
        try:
            await c.run()
        except Exception:
            counts["errors"] += 1

    async def start_one(f: dict) -> None:
        async with sem:
            c = PriceStreamClient(url, token, subscriptions={"s": f}, on_updates=on_updates, on_event=on_event,
                                  dedup_window=256, backoff_base=1.0)
            clients.append(c)
            tasks.append(asyncio.get_running_loop().create_task(run_one(c)))
            try:
                await asyncio.wait_for(c.ready.wait(), 60)
            except asyncio.TimeoutError:
                counts["errors"] += 1

    await asyncio.gather(*(start_one(f) for f in filters))
    ready_q.put((idx, sum(c.ready.is_set() for c in clients), counts["errors"]))
    while not stop_evt.is_set():
        await asyncio.sleep(0.1)
    counts["duplicates"] = sum(c.duplicates for c in clients)
    counts["reconnects"] = sum(max(0, c.connects - 1) for c in clients)
    result_q.put((idx, counts, lat.tobytes()))
