"""Benchmark catalog: real offers (GCP catalog + Shadeform's 18 clouds) replicated to >= 100,000 rows.

Each copy keeps the real instance, GPU, region and price shape, with a distinct external id, a price jittered
by up to ±15 % and a random availability, so filters and sorts see a realistic spread.
"""
from __future__ import annotations

import csv
import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

# the shared data sits beside the checkout (/work/shared next to /work/main), also seen from a worktree deeper down
DATA = next((d / "shared" / "data" for d in Path(__file__).resolve().parents if (d / "shared" / "data").is_dir()),
            Path(__file__).resolve().parents[2] / "shared" / "data")
GCP_CSV = DATA / "gcp_pricing_history_cyclenerd" / "gcp_gpu_catalog_2026-01-31.csv"
SHADEFORM_CSV = DATA / "skypilot_catalog_shadeform" / "shadeform_vms.csv"
GPU_MEMORY = {"A100": 40, "A100-80GB": 80, "H100": 80, "H100-MEGA": 80, "L4": 24, "A16": 16, "A40": 48,
              "A4000": 16, "A5000": 24, "A6000": 48, "B200": 192, "H200": 141, "L40": 48, "L40S": 48,
              "RTX4000ADA": 20, "RTX4090": 24, "RTX5090": 32, "RTX6000ADA": 48, "RTXPRO6000": 96, "V100": 16,
              "V100-32GB": 32}
_GCP_GPU = {"a100": "A100", "a100-80gb": "A100-80GB", "h100-80gb": "H100", "h100-80gb-mega": "H100-MEGA", "l4": "L4"}
_GCP_GEO = (("us-", "US", "NA"), ("northamerica-", "CA", "NA"), ("southamerica-", "BR", "SA"), ("europe-", "DE", "EU"),
            ("asia-", "JP", "AS"), ("me-", "AE", "AS"), ("australia-", "AU", "OC"), ("africa-", "ZA", "AF"))
_COUNTRY = {"usa": ("US", "NA"), "canada": ("CA", "NA"), "germany": ("DE", "EU"), "finland": ("FI", "EU"),
            "norway": ("NO", "EU"), "uk": ("GB", "EU"), "france": ("FR", "EU"), "iceland": ("IS", "EU"),
            "sweden": ("SE", "EU"), "poland": ("PL", "EU"), "india": ("IN", "AS"), "singapore": ("SG", "AS"),
            "japan": ("JP", "AS"), "australia": ("AU", "OC")}


def base_offers() -> list[dict[str, Any]]:
    """The real rows, normalized: ~1,700 GCP (on-demand and spot) and 244 Shadeform offers."""
    out = []
    with GCP_CSV.open() as f:
        for r in csv.DictReader(f):
            gpu = _GCP_GPU[r["gpu_type"]]
            country, continent = next(((c, k) for p, c, k in _GCP_GEO if r["region"].startswith(p)), (None, None))
            for pricing, col in (("on_demand", "price_ondemand"), ("spot", "price_spot")):
                if not r[col]:
                    continue
                out.append({"provider_id": "gcp", "external_id": f"{r['instance']}/{r['region']}/{pricing}",
                            "name": f"{r['instance']} {gpu} x{int(float(r['gpu_count']))}", "gpu_type": gpu,
                            "gpu_count": float(r["gpu_count"]), "vcpu": float(r["vcpu"]),
                            "memory_gb": float(r["memory_gb"]), "price": float(r[col]), "pricing": pricing,
                            "region": r["region"], "country": country, "continent": continent,
                            "tags": ["secure"] + (["nvlink"] if r["instance"].startswith(("a2-", "a3-")) else [])})
    with SHADEFORM_CSV.open() as f:
        for r in csv.DictReader(f):
            if not r["Price"]:
                continue
            cloud = r["InstanceType"].split("_", 1)[0]
            gpu = r["AcceleratorName"].upper().replace("A100-80G", "A100-80GB").replace("V100-32G", "V100-32GB")
            place = r["Region"].rsplit("-", 1)[0].split("-")[-1]
            country, continent = _COUNTRY.get(place, (None, None))
            low = r["InstanceType"].lower()
            out.append({"provider_id": cloud, "external_id": r["InstanceType"] + "/" + r["Region"],
                        "name": f"{r['InstanceType']} {gpu} x{int(float(r['AcceleratorCount']))}", "gpu_type": gpu,
                        "gpu_count": float(r["AcceleratorCount"]), "vcpu": float(r["vCPUs"] or 0) or None,
                        "memory_gb": float(r["MemoryGiB"] or 0) or None, "price": float(r["Price"]),
                        "pricing": "on_demand", "region": r["Region"], "country": country, "continent": continent,
                        "tags": ["community" if cloud in ("massedcompute", "cudo", "imwt") else "secure"]
                        + (["nvlink"] if "nvlink" in low else []) + (["sxm"] if "sxm" in low else [])})
    return out


def replicate(n: int, seed: int = 42) -> list[tuple]:
    """At least `n` offer rows for COPY into `offers` (columns: `COPY_COLUMNS`)."""
    rnd = random.Random(seed)
    base = base_offers()
    now = datetime.now(timezone.utc)
    rows = []
    copy = 0
    while len(rows) < n:
        for b in base:
            price = round(b["price"] * (0.85 + 0.3 * rnd.random()), 4) if copy else round(b["price"], 6)
            price = max(price, 0.01)
            rows.append((uuid.UUID(int=rnd.getrandbits(128), version=4), b["provider_id"],
                         f"{b['external_id']}#{copy}", b["name"], b["gpu_type"], b["gpu_count"],
                         float(GPU_MEMORY.get(b["gpu_type"], 0)) or None, b["vcpu"], b["memory_gb"], price,
                         round(price / b["gpu_count"], 6), b["pricing"], b["region"], b["country"], b["continent"],
                         rnd.choices(["up", "degraded", "down"], [90, 6, 4])[0], b["tags"],
                         now - timedelta(seconds=rnd.randint(0, 3600)), now))
        copy += 1
    return rows


COPY_COLUMNS = ("id", "provider_id", "external_id", "name", "gpu_type", "gpu_count", "gpu_memory_gb", "vcpu",
                "memory_gb", "price_per_hour", "price_per_gpu_hour", "pricing", "region", "country", "continent",
                "availability", "tags", "updated_at", "last_seen_at")


async def load(conn, n: int) -> int:
    """Replace the benchmark database's offers with `n`+ replicated rows; returns how many."""
    rows = replicate(n)
    await conn.execute("TRUNCATE offers, providers CASCADE")
    await conn.executemany("INSERT INTO providers (id, name) VALUES ($1, $1)", [(p,) for p in sorted({r[1] for r in rows})])
    await conn.copy_records_to_table("offers", records=rows, columns=COPY_COLUMNS)
    await conn.execute("ANALYZE offers")
    return len(rows)


def query_mix(rnd: random.Random, unique: bool = False) -> str:
    """One realistic /providers query string (what a marketplace UI and API clients send)."""
    gpus = ["H100", "h100", "A100-80GB", "a100", "L4", "H200", "L40S", "A6000", "RTX4090", "B200"]
    p: list[tuple[str, Any]] = []
    r = rnd.random()
    if r < 0.75:
        p.append(("gpu_type", rnd.choice(gpus)))
    if r > 0.9:
        p.append(("gpu_type", "H100,H200"))
    if rnd.random() < 0.3:
        p.append(("max_price", rnd.choice([2, 5, 10, 20, 40])))
    if rnd.random() < 0.15:
        p.append(("continent", rnd.choice(["NA", "EU", "AS"])))
    if rnd.random() < 0.15:
        p.append(("pricing", rnd.choice(["on_demand", "spot"])))
    if rnd.random() < 0.1:
        p.append(("min_gpu_count", rnd.choice([2, 4, 8])))
    if rnd.random() < 0.1:
        p.append(("availability", "up"))
    if rnd.random() < 0.05:
        p.append(("q", rnd.choice(["nvlink", "sxm", "a3-highgpu", "hyperstack"])))
    p.append(("sort", rnd.choices(["price_asc", "price_per_gpu_asc", "price_desc", "updated_desc"], [6, 2, 1, 1])[0]))
    if rnd.random() < 0.2:
        p.append(("page", rnd.choice([2, 3])))
    if unique:  # a price cap no other request uses: always a cache miss, still a realistic filter
        p.append(("max_price_per_gpu", round(rnd.uniform(5, 50), 4)))
    return "/providers?" + "&".join(f"{k}={v}" for k, v in p)
