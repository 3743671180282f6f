"""Outage benchmark: PostgreSQL, Redis and NATS each stopped under steady load, then started again.

    PYTHONPATH=. .venv/bin/python benchmarks/faults.py [--outage 5] [--rate 20]

Runs the Serve application (throughput mode) in a local Ray of its own, on isolated PostgreSQL, Redis and
NATS instances (benchmarks/fault_services.py; the machine's services are untouched), an IngestWorker
actor, and a load generator in a separate process sending the probe routes (readiness, authenticated
search, offer detail, profile, login, audit trail) at a fixed rate. For each dependency: answers by status
during the outage, seconds from its restart until `/ready` and then every probe route answer 2xx again,
and price events lost or duplicated (outbox vs the JetStream stream, after the relay drained). The
baseline is the same load in the seconds before each outage. Goals: 0 answers 500, recovery <= 2 s,
0 lost, 0 duplicated. Writes benchmarks/results/faults.json. Bounded: about 2 minutes.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.fault_load import PASSWORD, probes  # noqa: E402
from benchmarks.fault_services import IsolatedServices, free_port  # noqa: E402
from cluster.settings import load_settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "faults.json"
PROVIDER = "faultcloud"
BASELINE_S = 3.0


def offers(factor: str = "1") -> list:
    from adapters import registry

    a = registry.build("runpod")
    f = Decimal(factor)
    return [o.model_copy(update={"provider": PROVIDER, "price_per_hour": (o.price_per_hour * f).quantize(Decimal("0.0001")),
                                 "price_per_gpu_hour": (o.price_per_gpu_hour * f).quantize(Decimal("0.0001"))})
            for o in a.parse(a.load_snapshot()).offers[:50] if o.price_per_hour is not None]


def all_healthy(client: httpx.Client, plan: list) -> bool:
    for _, method, path, kw in plan:
        try:
            if client.request(method, path, **kw).status_code >= 300:
                return False
        except httpx.HTTPError:
            return False
    return True


async def event_counts(settings) -> dict:
    """Outbox messages vs the PRICES stream: lost (in the outbox, not in the stream) and duplicated."""
    import asyncpg
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from actors.pipeline import outbox_messages
    from cluster.messaging import stream_name

    conn = await asyncpg.connect(settings.database_url)
    rows = await conn.fetch("SELECT subject, msg_id, payload::text AS payload, body, messages, published_at FROM outbox")
    await conn.close()
    outbox = {m for r in rows for _, m, _ in outbox_messages(r)}
    nc = await nats.connect(settings.nats_url)
    sub = await nc.jetstream().pull_subscribe("", stream=stream_name(settings, "PRICES"), config=ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=30.0))
    seen: list[str] = []
    while True:
        try:
            seen += [m.headers.get("Nats-Msg-Id") for m in await sub.fetch(1000, timeout=1.0)]
        except (nats.errors.TimeoutError, asyncio.TimeoutError):
            break
    await nc.close()
    return {"events": len(outbox), "unpublished_rows": sum(r["published_at"] is None for r in rows),
            "lost": len(outbox - set(seen)), "duplicated": len(seen) - len(set(seen))}


def summarize(records: list[dict], t0: float, t1: float) -> dict:
    window = [r for r in records if t0 <= r["t"] < t1]
    by_status = Counter(str(r["status"]) for r in window)
    by_route: dict[str, Counter] = {}
    for r in window:
        by_route.setdefault(r["route"], Counter())[f'{r["status"]}{" " + r["code"] if r["code"] else ""}'] += 1
    ms = sorted(r["ms"] for r in window)
    return {"answers": len(window), "by_status": dict(by_status), "by_route": {k: dict(v) for k, v in by_route.items()},
            "p50_ms": ms[len(ms) // 2] if ms else None, "max_ms": ms[-1] if ms else None}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--outage", type=float, default=5.0, help="seconds each dependency stays down")
    p.add_argument("--rate", type=float, default=20.0, help="probe requests per second")
    args = p.parse_args()
    svc = IsolatedServices().start()
    state = Path(tempfile.mkdtemp(prefix="gpb-bench-faults-"))
    settings = load_settings(**svc.urls(), http_port=free_port(), haproxy_stats_port=free_port(),
                             haproxy_metrics_port=free_port(), state_dir=state, ingress_replicas_max=1,
                             search_replicas_max=1, readiness_timeout_s=0.5, log_level="WARNING")
    import ray
    from ray import serve

    from actors.provider_actor import IngestWorker
    from cluster.control import haproxy_pids
    from cluster.db import migrate
    from cluster.ray_env import ray_env
    from deployments.app import deploy

    os.environ.update(ray_env(settings))
    load = None
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="bench-faults",
                 _node_ip_address="127.0.0.1", log_to_driver=False, logging_level="WARNING")
        asyncio.run(migrate(settings))
        worker = ray.remote(IngestWorker).options(num_cpus=0, max_concurrency=16).remote(settings)
        ray.get(worker.ingest.remote(PROVIDER, offers(), full=True))
        deploy(settings)
        base = f"http://127.0.0.1:{settings.http_port}"
        client = httpx.Client(base_url=base, timeout=10)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not all_healthy(client, probes("-", "-", "-")[:1]):
            time.sleep(0.5)
        email = f"faults-{os.getpid()}@example.test"
        assert client.post("/auth/register", json={"email": email, "password": PASSWORD,
                                                   "tenant_name": "faults"}).status_code == 201
        token = client.post("/auth/login", json={"email": email, "password": PASSWORD}).json()["access_token"]
        offer_id = client.get("/providers", params={"provider": PROVIDER}).json()["items"][0]["id"]
        plan = probes(token, email, offer_id)
        records_file = state / "load.jsonl"
        duration = 3 * (BASELINE_S + args.outage + 12) + 10
        load = subprocess.Popen([sys.executable, "-m", "benchmarks.fault_load", "--base", base, "--token", token,
                                 "--email", email, "--offer-id", offer_id, "--rate", str(args.rate),
                                 "--duration", str(duration), "--out", str(records_file)],
                                cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        phases = []
        for i, dep in enumerate(("postgres", "redis", "nats")):
            t_base = time.time()
            time.sleep(BASELINE_S)
            t_stop = time.time()
            svc.stop(dep)
            t_end = time.monotonic() + args.outage
            ingests = Counter()
            while time.monotonic() < t_end:  # price changes keep coming during the outage
                try:
                    ray.get(worker.ingest.remote(PROVIDER, offers(f"1.{i}{int(time.time() * 10) % 100:02d}"),
                                                 full=False), timeout=15)
                    ingests["stored"] += 1
                except Exception:
                    ingests["refused"] += 1
                time.sleep(0.5)
            t_start = time.time()
            svc.start(dep)
            t_up = time.monotonic()
            ready_s = routes_s = None
            while time.monotonic() - t_up < 60:
                if ready_s is None and client.get("/ready").status_code == 200:
                    ready_s = round(time.monotonic() - t_up, 3)
                if ready_s is not None and all_healthy(client, plan):
                    routes_s = round(time.monotonic() - t_up, 3)
                    break
                time.sleep(0.05)
            t_drain = time.monotonic()
            events = asyncio.run(event_counts(settings))
            while events["unpublished_rows"] and time.monotonic() - t_drain < 60:
                time.sleep(0.2)
                events = asyncio.run(event_counts(settings))
            events["outbox_drained_s"] = round(time.monotonic() - t_up, 3)
            phases.append({"dependency": dep, "t": (t_base, t_stop, t_start), "ready_after_s": ready_s,
                           "all_routes_after_s": routes_s, "ingest_during_outage": dict(ingests), "events": events})
            print(f"{dep:8s} ready after {ready_s}s, every route after {routes_s}s, {events}", flush=True)
        load.wait(timeout=duration + 60)
        records = [json.loads(line) for line in records_file.read_text().splitlines()]
        result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                              "loadavg_1m_at_end": round(os.getloadavg()[0], 1)},
                  "load": {"rate_rps": args.rate, "routes": [p[0] for p in plan], "outage_s": args.outage,
                           "client_timeout_s": 10, "process": "benchmarks/fault_load.py"},
                  "goals": {"answers_500": 0, "recovery_s": 2.0, "lost": 0, "duplicated": 0},
                  "dependencies": {}}
        for ph in phases:
            t_base, t_stop, t_start = ph.pop("t")
            ph["baseline"] = summarize(records, t_base, t_stop)
            ph["during_outage"] = summarize(records, t_stop, t_start)
            ph["after_restart_10s"] = summarize(records, t_start, t_start + 10)
            result["dependencies"][ph.pop("dependency")] = ph
        result["totals"] = {"answers": len(records), "answers_500": sum(r["status"] == 500 for r in records),
                            "no_answer": sum(r["status"] == 0 for r in records),
                            "statuses": dict(Counter(str(r["status"]) for r in records))}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: result[k] for k in ("load", "totals")}, indent=2))
        for dep, ph in result["dependencies"].items():
            print(f"{dep:8s} outage answers {ph['during_outage']['by_status']} | ready {ph['ready_after_s']}s, "
                  f"all routes {ph['all_routes_after_s']}s | lost {ph['events']['lost']}, dup {ph['events']['duplicated']}")
        print(f"wrote {RESULTS}")
    finally:
        if load is not None and load.poll() is None:
            load.terminate()
        if ray.is_initialized():
            try:
                serve.shutdown()
            except Exception:
                pass
            ray.shutdown()
        for pid in haproxy_pids(settings.http_port):
            os.kill(pid, 15)
        svc.close()


if __name__ == "__main__":
    main()
