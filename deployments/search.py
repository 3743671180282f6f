"""The `Search` Serve deployment: the marketplace search service behind a deployment handle.

The ingress answers /providers from its own in-process copy by default (`search_in_ingress`), because the
Serve handle hop costs more than the search itself; this deployment serves other deployments (chat,
recommendations) and the ingress when `search_in_ingress=False`, and scales on ongoing requests.
"""
from __future__ import annotations

from typing import Any

from cluster.logs import configure_logging
from cluster.runtime import Runtime
from cluster.settings import Settings
from deployments.search_service import Reply, SearchService


class Search:
    """Answers search, export and detail calls from an in-memory index kept fresh by NATS deltas."""

    async def __init__(self, settings: Settings):
        configure_logging(settings.log_level)
        self.runtime = await Runtime(settings).start()
        self.service = await SearchService(settings, self.runtime).start()

    async def search(self, raw: bytes | str) -> Reply:
        """One page of results for a raw query string (as in GET /providers?...)."""
        return await self.service.search(raw.encode() if isinstance(raw, str) else raw)

    async def export(self, raw: bytes | str) -> Reply:
        """The whole export (≤ 10,000 rows) as one body; the ingress streams it on."""
        plan = self.service.export_plan(raw.encode() if isinstance(raw, str) else raw)
        if isinstance(plan, Reply):
            return plan
        index, result, fmt = plan
        body = b"".join([c async for c in self.service.export_chunks(index, result, fmt)])
        return Reply(200, body, headers=self.service.export_headers(result, fmt))

    async def detail(self, offer_id: str) -> Reply:
        """One offer with its price history."""
        return await self.service.detail(offer_id)

    async def stats(self) -> dict[str, Any]:
        """Index size, version and cache hit ratio of this replica."""
        s = self.service
        return {"offers": s.index.n, "version": s.version, "loaded": s.loaded, "hit_ratio": s.ratio.ratio}

    async def __del__(self):
        try:
            await self.service.close()
            await self.runtime.close()
        except Exception:
            pass
