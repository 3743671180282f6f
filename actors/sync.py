"""One provider sync: fetch (live, or the bundled snapshot) -> parse -> ingest -> provider health.

Plain async code shared by the ProviderAdapter actors, `gpubroker sync` and the bundled catalog load;
`sink` is an `OfferSink`: an `Ingestor`, or the IngestWorker actor behind a proxy with the same methods.
Health rules (FR-PROV-4):
- live data stored                      -> ok, source 'live'
- snapshot by configuration (offline)   -> ok, source 'snapshot' (details say which recording)
- adapter without a live path           -> ok, source 'snapshot', details.note says why
- credentials missing                   -> degraded, last_error says so, the snapshot is served
- live call failed (HTTP error, timeout, circuit open) -> degraded with the error; stored offers are kept
  as they are (an outage is not evidence that offers vanished); a provider with no offers yet gets its
  snapshot so the catalog is never empty
- even the snapshot cannot be stored    -> down with the error
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Iterable, Protocol

from actors.pipeline import SyncStats
from adapters.base import Adapter, AdapterError, CredentialsMissing, LiveUnsupported
from cluster.logs import get_logger

log = get_logger("sync")


class OfferSink(Protocol):
    """Where a sync stores a provider's offers and health (`actors.pipeline.Ingestor`)."""

    async def ensure_provider(self, provider: str, name: str, endpoint: str | None = None) -> None:
        """Create or rename the provider row."""

    async def has_offers(self, provider: str) -> bool:
        """Whether any offer of the provider is stored."""

    async def ingest(self, provider: str, offers: Iterable[Any], *, full: bool = True,
                     rejected: dict[str, int] | None = None, display: str | None = None) -> SyncStats:
        """Store one sync's offers (a full sync marks the offers not seen 'down') and emit the deltas."""

    async def record_health(self, provider: str, status: str, *, last_error: str | None,
                            latency_ms: float | None, source: str | None, details: dict[str, Any],
                            synced: bool) -> None:
        """Record the provider's health after a sync (or a failed one: `synced` False)."""


@dataclass
class SyncOutcome:
    provider: str
    status: str
    source: str
    last_error: str | None
    latency_ms: float
    stats: SyncStats | None

    def as_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "status": self.status, "source": self.source,
                "last_error": self.last_error, "latency_ms": round(self.latency_ms, 1),
                "stats": self.stats.as_dict() if self.stats else None}


async def sync_provider(adapter: Adapter, sink: OfferSink, *, live: bool,
                        parsed: tuple[list, dict[str, int]] | None = None, note: str | None = None) -> SyncOutcome:
    """Sync one provider; never raises for a provider-side failure (it becomes health). Offline, `parsed`
    (offers, rejected by reason) is the snapshot already parsed elsewhere (the catalog load parses every
    provider's in one Ray Data job); `note` goes into the health details."""
    name = adapter.NAME
    await sink.ensure_provider(name, adapter.DISPLAY, adapter.API_ENDPOINT)
    status, source, error, raw, failed = "ok", "snapshot", None, None, False
    t0 = time.perf_counter()
    if live:
        try:
            raw, source = await adapter.fetch(), "live"
        except LiveUnsupported as exc:
            note = str(exc)
        except CredentialsMissing as exc:
            status, error = "degraded", f"{exc}; serving the bundled snapshot"
        except AdapterError as exc:
            status, error, failed = "degraded", str(exc), True
    latency_ms = (time.perf_counter() - t0) * 1000
    details: dict[str, Any] = {"snapshot_date": adapter.SNAPSHOT_DATE, "breaker": adapter.breaker.state}
    if note:
        details["note"] = note
    if failed:
        if await sink.has_offers(name):
            await sink.record_health(name, status, last_error=error, latency_ms=latency_ms, source=None,
                                     details=details, synced=False)  # source: where the kept offers came from
            return SyncOutcome(name, status, "live", error, latency_ms, None)
        error = f"{error}; serving the bundled snapshot"
    try:
        if parsed is not None and raw is None:
            offers, rejected = parsed
        else:
            if raw is None:
                t1 = time.perf_counter()
                raw = await asyncio.to_thread(adapter.load_snapshot)
                if not live:
                    latency_ms = (time.perf_counter() - t1) * 1000
            result = await asyncio.to_thread(adapter.parse, raw)
            offers, rejected = result.offers, result.reject_counts()
        stats = await sink.ingest(name, offers, rejected=rejected, full=True, display=adapter.DISPLAY)
    except Exception as exc:  # storage or snapshot failure: the provider is down, the others go on
        log.warning("sync failed", extra={"provider": name, "error": str(exc)[:300]})
        error = f"{type(exc).__name__}: {exc}"[:500]
        try:
            await sink.record_health(name, "down", last_error=error, latency_ms=latency_ms, source=source,
                                     details=details, synced=False)
        except Exception:
            pass
        return SyncOutcome(name, "down", source, error, latency_ms, None)
    details["last_sync"] = stats.as_dict()
    await sink.record_health(name, status, last_error=error, latency_ms=latency_ms, source=source,
                             details=details, synced=True)
    return SyncOutcome(name, status, source, error, latency_ms, stats)
