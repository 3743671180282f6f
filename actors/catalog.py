"""The bundled offline catalog and the GCP price-history backfill, as batch work over files (Ray Data).

`load_catalog()` parses every provider's bundled snapshot (one Ray Data task per provider when Ray is up,
in-process otherwise) and ingests the providers that have no offers yet, so it is idempotent and never
overwrites fresher live data. `backfill_gcp_history()` turns the GCP change log (2022-02 .. 2026-01) into
price_history rows of the stored GCP offers, once (it checks for earlier rows first).
"""
from __future__ import annotations

import asyncio
import io
import time
from datetime import datetime, timezone
from typing import Any, Callable

from adapters.base import SNAPSHOT_DIR

GCP_CHANGES = SNAPSHOT_DIR / "gcp_price_changes.csv.gz"


def parse_snapshot(name: str) -> tuple[list, dict[str, int], str]:
    """(offers, rejected by reason, display name) of one provider's bundled snapshot."""
    from adapters import registry

    adapter = registry.build(name)
    result = adapter.parse(adapter.load_snapshot())
    return result.offers, result.reject_counts(), adapter.DISPLAY


def _parse_batch(batch: dict) -> dict:
    import pickle

    out = [pickle.dumps(parse_snapshot(str(n))) for n in batch["provider"]]
    return {"provider": batch["provider"], "parsed": out}


def parse_all(names: list[str], use_ray: bool) -> dict[str, tuple[list, dict[str, int], str]]:
    """Parse the snapshots, as a Ray Data job (a batch over files) when Ray is initialized."""
    if use_ray:
        import pickle

        import ray

        if ray.is_initialized():
            ds = ray.data.from_items([{"provider": n} for n in names])
            ds = ds.map_batches(_parse_batch, batch_size=1, num_cpus=0.25, batch_format="numpy")
            return {str(r["provider"]): pickle.loads(r["parsed"]) for r in ds.iter_rows()}
    return {n: parse_snapshot(n) for n in names}


async def load_catalog(ingestor: Any, names: list[str] | None = None, *, use_ray: bool = False,
                       echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Ingest the bundled snapshot of every provider that has no offers yet. Returns counts."""
    from adapters import registry

    t0 = time.perf_counter()
    names = names or registry.names()
    todo = [n for n in names if not await ingestor.has_offers(n)]
    parsed = await asyncio.to_thread(parse_all, todo, use_ray) if todo else {}
    inserted = rejected = 0
    for name in todo:
        offers, rej, display = parsed[name]
        adapter = registry.adapter_class(name)
        await ingestor.ensure_provider(name, display, adapter.API_ENDPOINT)
        stats = await ingestor.ingest(name, offers, rejected=rej, full=True, display=display)
        inserted += stats.inserted
        rejected += stats.rejected_total
        await ingestor.record_health(name, "ok", last_error=None, latency_ms=None, source="snapshot",
                                     details={"snapshot_date": adapter.SNAPSHOT_DATE, "last_sync": stats.as_dict(),
                                              "note": "bundled offline catalog"}, synced=True)
    out = {"providers_loaded": len(todo), "providers_skipped": len(names) - len(todo), "inserted": inserted,
           "rejected": rejected, "seconds": round(time.perf_counter() - t0, 2)}
    if echo:
        echo(f"catalog: {out['inserted']} offers from {out['providers_loaded']} bundled snapshots "
             f"({out['providers_skipped']} providers already loaded) in {out['seconds']}s")
    return out


def _history_rows(batch: Any) -> Any:
    """Ray Data batch (pandas) of change-log rows -> (external_id, price, recorded_at) rows."""
    import pandas as pd

    base = batch["instance"].astype(str) + ":" + batch["region"].astype(str)
    ts = pd.to_datetime(batch["date"].astype(str), utc=True)
    od = pd.DataFrame({"external_id": base, "price": batch["price_ondemand"], "recorded_at": ts})
    spot = pd.DataFrame({"external_id": base + ":spot", "price": batch["price_spot"], "recorded_at": ts})
    out = pd.concat([od, spot], ignore_index=True)
    out = out[pd.to_numeric(out["price"], errors="coerce") > 0]
    return out.assign(price=out["price"].astype(float).round(6))


def history_frame(use_ray: bool):
    """The change log as history rows: a Ray Data read_csv + map_batches when Ray is up, pandas otherwise."""
    if use_ray:
        import ray

        if ray.is_initialized():
            ds = ray.data.read_csv(str(GCP_CHANGES)).map_batches(_history_rows, batch_format="pandas", num_cpus=0.25)
            return ds.to_pandas()
    import pandas as pd

    return _history_rows(pd.read_csv(GCP_CHANGES))


async def backfill_gcp_history(pool: Any, *, use_ray: bool = False) -> int:
    """Insert GCP's recorded price changes as history of the stored GCP offers (once). Returns rows added."""
    cutoff = datetime(2026, 1, 29, tzinfo=timezone.utc)
    async with pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('backfill:gcp'))")
            done = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM price_history h JOIN offers o ON o.id = h.offer_id "
                "WHERE o.provider_id = 'gcp' AND h.recorded_at < $1)", cutoff)
            if done or not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM offers WHERE provider_id='gcp')"):
                return 0
            frame = await asyncio.to_thread(history_frame, use_ray)
            buf = io.BytesIO(frame[["external_id", "price", "recorded_at"]].to_csv(index=False, header=False).encode())
            await conn.execute("CREATE TEMP TABLE _hist (external_id text, price numeric(14,6), recorded_at timestamptz)"
                               " ON COMMIT DROP")
            await conn.copy_to_table("_hist", source=buf, format="csv")
            res = await conn.execute(
                "INSERT INTO price_history (offer_id, price_per_hour, availability, recorded_at) "
                "SELECT o.id, h.price, 'up', h.recorded_at FROM _hist h "
                "JOIN offers o ON o.provider_id = 'gcp' AND o.external_id = h.external_id "
                "WHERE h.recorded_at < $1", cutoff)
            return int(res.split()[-1])
