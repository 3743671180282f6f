"""The bundled offline catalog and the GCP price-history backfill, as batch work over files (Ray Data).

`load_catalog()` parses every provider's bundled snapshot (one Ray Data task per provider when Ray is up,
in-process otherwise) and stores the providers that have no offers yet through the same path as a sync
from the snapshot (`actors.sync.sync_provider`), so it is idempotent and never overwrites fresher live
data. `backfill_gcp_history()` turns GCP's change log (`adapters.gcp.PRICE_CHANGES`) into price_history
rows of the stored GCP offers, once.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from actors.sync import OfferSink, sync_provider
from adapters import gcp
from cluster.repositories import offers as offers_repo


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


async def load_catalog(ingestor: OfferSink, names: list[str] | None = None, *, use_ray: bool = False,
                       echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Ingest the bundled snapshot of every provider that has no offers yet. Returns counts."""
    from adapters import registry

    t0 = time.perf_counter()
    names = names or registry.names()
    todo = [n for n in names if not await ingestor.has_offers(n)]
    parsed = await asyncio.to_thread(parse_all, todo, use_ray) if todo else {}
    inserted = rejected = 0
    for name in todo:
        offers, rej, _display = parsed[name]
        outcome = await sync_provider(registry.build(name), ingestor, live=False, parsed=(offers, rej),
                                      note="bundled offline catalog")
        if outcome.stats is None:  # recorded as health 'down'; the catalog load itself fails loudly
            raise RuntimeError(f"bundled catalog of {name} not stored: {outcome.last_error}")
        inserted += outcome.stats.inserted
        rejected += outcome.stats.rejected_total
    out = {"providers_loaded": len(todo), "providers_skipped": len(names) - len(todo), "inserted": inserted,
           "rejected": rejected, "seconds": round(time.perf_counter() - t0, 2)}
    if echo:
        echo(f"catalog: {out['inserted']} offers from {out['providers_loaded']} bundled snapshots "
             f"({out['providers_skipped']} providers already loaded) in {out['seconds']}s")
    return out


def history_frame(use_ray: bool):
    """GCP's change log as history rows: a Ray Data read_csv + map_batches when Ray is up, pandas otherwise."""
    if use_ray:
        import ray

        if ray.is_initialized():
            ds = ray.data.read_csv(str(gcp.PRICE_CHANGES)).map_batches(gcp.price_change_rows, batch_format="pandas",
                                                                       num_cpus=0.25)
            return ds.to_pandas()
    import pandas as pd

    return gcp.price_change_rows(pd.read_csv(gcp.PRICE_CHANGES))


async def backfill_gcp_history(pool: Any, *, use_ray: bool = False) -> int:
    """Insert GCP's recorded price changes as history of the stored GCP offers (once). Returns rows added."""

    async def csv_rows() -> bytes:
        frame = await asyncio.to_thread(history_frame, use_ray)
        return frame[["external_id", "price", "recorded_at"]].to_csv(index=False, header=False).encode()

    return await offers_repo.backfill_history(pool, gcp.GcpProvider.NAME, gcp.history_cutoff(), csv_rows)
