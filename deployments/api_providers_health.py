"""GET /providers/health (FR-PROV-4): per adapter {provider, status, last_sync_ts, last_error, latency_ms, offers}.

Read from the provider_health table the ingestion writes after every sync. An unknown state is never a
5xx: a registered adapter without a row, a stale row, or a health store that cannot be read all answer
200 with status 'degraded' and the reason in last_error. Mounted before any other /providers route so
that '/providers/{id}' never captures 'health'.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from cluster.repositories import providers as providers_repo

router = APIRouter(tags=["providers"])
_STALE_FACTOR = 3  # a provider whose last sync is older than 3 sync intervals is degraded


class ProviderHealth(BaseModel):
    provider: str
    name: str | None = None
    status: str = Field(description="ok | degraded | down")
    last_sync_ts: datetime | None = None
    last_error: str | None = None
    latency_ms: float | None = None
    offers: int
    source: str | None = Field(None, description="live | snapshot: where the stored offers came from")
    details: dict[str, Any] = Field(default_factory=dict)


class HealthReport(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok", "providers": [{
        "provider": "gcp", "name": "Google Cloud", "status": "ok", "last_sync_ts": "2026-12-01T14:00:00Z",
        "last_error": None, "latency_ms": 812.5, "offers": 1432, "source": "snapshot", "details": {}}]}]})

    status: str = Field(description="worst status over all providers")
    providers: list[ProviderHealth]


def _assess(row: dict[str, Any] | None, provider: str, interval_s: float, now: datetime) -> ProviderHealth:
    if row is None or row.get("status") is None:
        return ProviderHealth(provider=provider, name=(row or {}).get("name"), status="degraded", last_sync_ts=None,
                              last_error="no sync recorded yet", latency_ms=None, offers=0)
    status, error = row["status"], row["last_error"]
    if status not in ("ok", "degraded", "down"):
        status, error = "degraded", f"unknown stored status {status!r}"
    last = row["last_sync_ts"]
    if status == "ok" and last is not None and (now - last).total_seconds() > _STALE_FACTOR * interval_s:
        status, error = "degraded", f"stale: last sync {int((now - last).total_seconds())}s ago"
    if status == "ok" and last is None:
        status, error = "degraded", "no successful sync recorded yet"
    return ProviderHealth(provider=provider, name=row["name"], status=status, last_sync_ts=last, last_error=error,
                          latency_ms=row["latency_ms"], offers=row["offers"] or 0, source=row["source"],
                          details=row["details"] or {})


@router.get("/providers/health", response_model=HealthReport, summary="Per-adapter sync health")
async def providers_health(request: Request) -> HealthReport:
    from adapters import registry

    settings = request.app.state.settings
    names = registry.names()
    now = datetime.now(timezone.utc)
    try:
        pool = await request.app.state.runtime.get_pg()
        rows = await providers_repo.health(pool, timeout=2)
    except Exception as exc:  # the health store is unreachable: say so, per provider, without a 5xx
        reason = f"health store unavailable: {type(exc).__name__}"
        items = [ProviderHealth(provider=n, status="degraded", last_sync_ts=None, last_error=reason,
                                latency_ms=None, offers=0) for n in names]
        return HealthReport(status="degraded", providers=items)
    items = [_assess(rows.get(n), n, settings.sync_interval_s, now) for n in names]
    # providers stored but no longer registered (a removed adapter) are reported too, never hidden
    items += [_assess(r, pid, settings.sync_interval_s, now) for pid, r in sorted(rows.items())
              if pid not in set(names) and r.get("status") is not None]
    rank = {"ok": 0, "degraded": 1, "down": 2}
    worst = max((i.status for i in items), key=rank.__getitem__, default="degraded")
    return HealthReport(status=worst, providers=items)


__all__ = ["router", "providers_health"]
