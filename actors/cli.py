"""`gpubroker sync`, `gpubroker replay` and the `gpubroker up` step of ingestion.

Registered in deployments/cli.py (`register`; `up_step` runs after the Serve application is up).
"""
from __future__ import annotations

import asyncio
import sys
import time
from contextlib import asynccontextmanager
from typing import Any, Callable

from cluster.settings import Settings


@asynccontextmanager
async def _ingestor(settings: Settings, need_nats: bool = True):
    """An Ingestor on fresh connections (closed on exit); NATS optional (events then wait in the outbox)."""
    from actors.pipeline import Ingestor
    from cluster.db import migrate
    from cluster.messaging import ensure_streams
    from cluster.runtime import Runtime

    await migrate(settings)
    rt = Runtime(settings)
    await rt.start()
    try:
        js = None
        if need_nats:
            try:
                js = (await rt.get_nats()).jetstream()
                await ensure_streams(settings, js)
            except Exception as exc:
                print(f"warning: NATS unavailable ({exc}); price events stay in the outbox", file=sys.stderr)
                js = None
        yield Ingestor(settings, await rt.get_pg(), rt.redis, js)
    finally:
        await rt.close()


def _bar(done: int, total: int, label: str, width: int = 30) -> None:
    if not sys.stderr.isatty() and done not in (0, total):
        return
    fill = int(width * done / max(total, 1))
    sys.stderr.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{total} {label:<24.24}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


async def run_sync(settings: Settings, providers: list[str], echo: Callable[[str], None] = print) -> list:
    from actors.sync import sync_provider
    from adapters import registry
    from cluster.secrets import secret_store

    secrets = secret_store(settings)
    outcomes = []
    t0 = time.perf_counter()
    async with _ingestor(settings) as ing:
        for i, name in enumerate(providers):
            _bar(i, len(providers), name)
            outcomes.append(await sync_provider(registry.build(name, settings, secrets), ing,
                                                live=settings.adapters_live))
        _bar(len(providers), len(providers), "done")
    wall = time.perf_counter() - t0
    tot: dict[str, Any] = {"inserted": 0, "updated": 0, "unchanged": 0, "marked_down": 0, "deltas": 0}
    rejected: dict[str, int] = {}
    records = 0
    for o in outcomes:
        s = o.stats
        flag = "" if o.status == "ok" else f"  [{o.status}: {o.last_error}]"
        if s is None:
            echo(f"  {o.provider:15s} no data stored{flag}")
            continue
        for k in tot:
            tot[k] += getattr(s, k)
        for k, v in s.rejected.items():
            rejected[k] = rejected.get(k, 0) + v
        records += s.received + s.rejected_total
        echo(f"  {o.provider:15s} {o.source:8s} {s.received:6d} offers  +{s.inserted} ~{s.updated} ={s.unchanged}"
             f" down {s.marked_down} rejected {s.rejected_total}{flag}")
    echo(f"synced {len(providers)} providers: {records} records in {wall:.2f}s ({records / wall:,.0f} records/s); "
         f"inserted {tot['inserted']}, updated {tot['updated']}, unchanged {tot['unchanged']}, "
         f"marked down {tot['marked_down']}, price events {tot['deltas']}")
    echo("rejected by reason: " + (", ".join(f"{k}={v}" for k, v in sorted(rejected.items())) or "none"))
    return outcomes


def cmd_sync(settings: Settings, args) -> int:
    from adapters import registry

    if args.live:
        settings = settings.with_overrides(adapters_live=True)
    names = [args.provider] if args.provider else registry.names()
    for n in names:
        registry.adapter_class(n)  # unknown name: error listing the known ones
    outcomes = asyncio.run(run_sync(settings, names))
    return 0 if all(o.status != "down" for o in outcomes) else 1


async def run_replay(settings: Settings, speed: float, limit: int | None, max_sleep_s: float,
                     echo: Callable[[str], None] = print) -> dict[str, int]:
    """Feed the Prime Intellect series poll by poll through the pipeline, sleeping (gap / speed)."""
    from datetime import datetime

    from adapters.primeintellect import PrimeIntellectProvider, polls

    adapter = PrimeIntellectProvider(settings)
    series = polls(adapter.load_snapshot())[: limit or None]
    totals = {"polls": 0, "deltas": 0, "published": 0}
    async with _ingestor(settings) as ing:
        prev: datetime | None = None
        for ts_s, rows in series:
            ts = datetime.fromisoformat(ts_s)
            if prev is not None and speed > 0:
                await asyncio.sleep(min(max_sleep_s, (ts - prev).total_seconds() / speed))
            prev = ts
            result = adapter.parse(rows)
            stats = await ing.ingest(adapter.NAME, result.offers, rejected=result.reject_counts(), full=True,
                                     display=adapter.DISPLAY)
            totals["polls"] += 1
            totals["deltas"] += stats.deltas
            totals["published"] += stats.published
            echo(f"{ts_s[:19]}  {stats.received:3d} offers  {stats.deltas:3d} price changes "
                 f"({stats.marked_down} gone)  rejected {stats.rejected_total}")
    echo(f"replayed {totals['polls']} polls: {totals['deltas']} price events, {totals['published']} published")
    return totals


def cmd_replay(settings: Settings, args) -> int:
    asyncio.run(run_replay(settings, args.speed, args.limit, args.max_sleep))
    return 0


def register(sub) -> None:
    p = sub.add_parser("sync", help="sync provider catalogs once (all, or --provider X) and print a summary")
    p.add_argument("--provider", help="one provider id (see adapters/registry.py)")
    p.add_argument("--live", action="store_true", help="call the provider APIs (default: settings.adapters_live)")
    p.set_defaults(func=cmd_sync)
    p = sub.add_parser("replay", help="replay the 28-day Prime Intellect marketplace series as live price changes")
    p.add_argument("--speed", type=float, default=3600.0, help="time acceleration (3600: one hour per second)")
    p.add_argument("--limit", type=int, default=None, help="stop after this many polls")
    p.add_argument("--max-sleep", type=float, default=5.0, help="longest pause between two polls, seconds")
    p.set_defaults(func=cmd_replay)


def up_step(settings: Settings, echo: Callable[[str], None]) -> None:
    """`gpubroker up`: load the bundled catalog (idempotent), backfill GCP history, start the adapter actors."""
    from actors.catalog import backfill_gcp_history, load_catalog
    from actors.provider_actor import start_actors

    async def _load() -> None:
        async with _ingestor(settings) as ing:
            await load_catalog(ing, use_ray=True, echo=echo)
            added = await backfill_gcp_history(ing.pool, use_ray=True)
            if added:
                echo(f"price history: {added} GCP rows backfilled (2022-02 .. 2026-01)")

    asyncio.run(_load())
    handles = start_actors(settings)
    echo(f"provider adapters: {len(handles) - 1} actors scheduled every {settings.sync_interval_s:g}s "
         f"({'live APIs' if settings.adapters_live else 'bundled snapshots'})")
