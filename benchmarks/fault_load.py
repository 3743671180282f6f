"""Light steady load for benchmarks/faults.py, run as its own process: the probe routes round-robin at a
fixed rate; one JSON line per answer (wall time sent, route, status, latency), status 0 for no answer.

    python -m benchmarks.fault_load --base URL --token T --email E --offer-id ID --rate 20 --duration 60 --out f
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx

PASSWORD = "correct horse battery staple"
TIMEOUT_S = 10.0  # an answer slower than this counts as a hang (status 0)


def probes(token: str, email: str, offer_id: str) -> list[tuple[str, str, str, dict]]:
    """(label, method, path, request kwargs): the routes that need PostgreSQL, Redis or NATS."""
    auth = {"headers": {"Authorization": f"Bearer {token}"}}
    return [
        ("ready", "GET", "/ready", {}),
        ("search_auth", "GET", "/providers", {"params": {"page_size": 5}, **auth}),
        ("offer_detail", "GET", f"/providers/{offer_id}", {}),
        ("me", "GET", "/auth/me", auth),
        ("login", "POST", "/auth/login", {"json": {"email": email, "password": PASSWORD}}),
        ("audit", "GET", "/admin/audit", {"params": {"limit": 5}, **auth}),
    ]


async def run(args) -> None:
    plan = probes(args.token, args.email, args.offer_id)
    out = open(args.out, "w", buffering=1)
    pending: set[asyncio.Task] = set()

    async def one(client: httpx.AsyncClient, label: str, method: str, path: str, kw: dict) -> None:
        sent = time.time()
        try:
            r = await client.request(method, path, **kw)
            status, code = r.status_code, (r.json().get("error") or {}).get("code") if r.status_code >= 400 else None
        except (httpx.HTTPError, ValueError) as exc:
            status, code = 0, type(exc).__name__
        out.write(json.dumps({"t": sent, "route": label, "status": status, "code": code,
                              "ms": round((time.time() - sent) * 1000, 1)}) + "\n")

    async with httpx.AsyncClient(base_url=args.base, timeout=TIMEOUT_S,
                                 limits=httpx.Limits(max_connections=64)) as client:
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < args.duration:
            label, method, path, kw = plan[i % len(plan)]
            task = asyncio.get_running_loop().create_task(one(client, label, method, path, kw))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
            await asyncio.sleep(max(0.0, start + i / args.rate - time.monotonic()))
        await asyncio.gather(*pending)
    out.close()


def main() -> None:
    p = argparse.ArgumentParser()
    for name in ("--base", "--token", "--email", "--offer-id", "--out"):
        p.add_argument(name, required=True)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--duration", type=float, default=60.0)
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
