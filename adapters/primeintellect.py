"""Prime Intellect's aggregated GPU marketplace (28 days, 2025-10-19..11-16, polled every 30 min - 4 h).

Snapshot: `by_provider.csv` of tugot17/gpu-price-tracker: per poll x GPU x socket x underlying provider,
the offer count and min/avg price per GPU-hour. Each (underlying provider, GPU, socket) is one offer here:
its price is the poll's minimum, availability 'up' while any are listed. `parse` of the whole series
takes the latest poll; `gpubroker replay` feeds the polls one by one as live price changes.

Live: GET https://api.primeintellect.ai/api/v1/availability/gpus?page=N&page_size=100 with
`Authorization: Bearer <providers/primeintellect#apikey>` (docs.primeintellect.ai, "Get Availability
Information"; paging as the official prime-cli's AvailabilityClient does: pages until `items` reaches
`totalCount`). Each item {cloudId, gpuType, socket, provider, dataCenter, country, gpuCount, gpuMemory,
vcpu{defaultCount}, memory{defaultCount}, stockStatus, security, prices{onDemand, communityPrice,
currency}, isSpot} is one offer for its gpuCount GPUs (price = communityPrice when set, else onDemand,
as prime-cli and the tracker that recorded our series read it), region '<dataCenter>, <country>'.
Unlike the snapshot (a per-provider minimum), live offers are per configuration, so their ids differ.
We hold no recorded response of this API: the live shape is tested with items built from the
documented example, never recorded ones.
"""
from __future__ import annotations

from typing import Any, Iterable

from adapters.base import Adapter, FetchError, RecordError, dec, num
from domain.gpus import resolve
from domain.models import Offer


PAGE_SIZE = 100  # the documented maximum
MAX_PAGES = 100
DOWN_STOCK = {"unavailable", "out of stock", "out_of_stock"}


def live_id(it: dict) -> str:
    """One API configuration: provider, cloud id, data center, GPU count, security, spot or not."""
    return ":".join(str(x) for x in (it.get("provider") or "-", it.get("cloudId") or "-", it.get("dataCenter") or "-",
                                     it.get("gpuCount"), it.get("security") or "-",
                                     "spot" if it.get("isSpot") else "od"))


def polls(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    """The series grouped by poll timestamp, oldest first."""
    by_ts: dict[str, list[dict]] = {}
    for r in rows:
        by_ts.setdefault(r["timestamp"], []).append(r)
    return sorted(by_ts.items())


class PrimeIntellectProvider(Adapter):
    NAME = "primeintellect"
    DISPLAY = "Prime Intellect marketplace"
    API_ENDPOINT = "https://api.primeintellect.ai"
    SNAPSHOT = "primeintellect_by_provider.csv.gz"
    SNAPSHOT_DATE = "2025-11-16"
    SECRET = ("providers/primeintellect", "apikey")
    SECRET_REQUIRED = True

    def records(self, raw: Any) -> Iterable[dict]:
        if isinstance(raw, dict) and "items" in raw:
            return self._live_items(raw["items"])
        if not raw:
            return []
        latest = max(r["timestamp"] for r in raw)
        return [r for r in raw if r["timestamp"] == latest]

    @staticmethod
    def _live_items(items: list[dict]) -> list[dict]:
        out: dict[str, dict] = {}
        for it in items:
            key = live_id(it) if isinstance(it, dict) else repr(it)
            out.setdefault(key, it)  # the same configuration twice: the first one is the offer
        return list(out.values())

    def record_id(self, rec: dict) -> str | None:
        if "gpuType" in rec:
            return live_id(rec)
        return f"{rec.get('provider')}:{rec.get('gpu_type')}:{rec.get('socket_type')}"

    def to_offers(self, rec: dict) -> list[Offer]:
        if "gpuType" in rec:
            return [self._live_offer(rec)]
        socket = rec.get("socket_type") or ""
        gpu = resolve(rec["gpu_type"], hint=socket)
        listed = num(rec.get("count")) or 0
        if rec.get("min") in (None, ""):
            raise RecordError("missing_price", "no min price")
        return [self.make_offer(
            external_id=f"{rec['provider']}:{rec['gpu_type']}:{socket or '-'}",
            name=f"{gpu.name} via {rec['provider']} (Prime Intellect)", gpu=gpu, gpu_count=1,
            price=dec(rec["min"]), region="global", availability="up" if listed > 0 else "down",
            tags=[rec["provider"]], last_updated=rec["timestamp"],
            attributes={"underlying_provider": rec["provider"], "listed": listed, "avg_price": num(rec.get("avg")),
                        "socket": socket, "poll_ts": rec["timestamp"]},
        )]

    def _live_offer(self, it: dict) -> Offer:
        prices = it.get("prices") or {}
        if (prices.get("currency") or "USD") != "USD":
            raise RecordError("unsupported_currency", f"currency {prices.get('currency')!r}")
        price = prices.get("communityPrice") if prices.get("communityPrice") is not None else prices.get("onDemand")
        if price is None:
            raise RecordError("missing_price", "neither communityPrice nor onDemand")
        count = num(it.get("gpuCount"))
        if not count:
            raise RecordError("invalid_gpu_count", f"gpuCount {it.get('gpuCount')!r}")
        socket = it.get("socket") or ""
        gpu = resolve(it["gpuType"], memory_gb=num(it.get("gpuMemory")), hint=socket)
        country, dc = (it.get("country") or "").strip(), (it.get("dataCenter") or "").strip()
        region = f"{dc or country}, {country}" if country else "global"
        stock = it.get("stockStatus") or ""
        provider = it.get("provider") or "unknown"
        return self.make_offer(
            external_id=live_id(it), name=f"{count:g}x {gpu.name} via {provider} (Prime Intellect)", gpu=gpu,
            gpu_count=count, gpu_memory_gb=num(it.get("gpuMemory")), price=dec(price), region=region,
            pricing="spot" if it.get("isSpot") else "on_demand",
            availability="down" if stock.lower() in DOWN_STOCK else "up",
            vcpu=num((it.get("vcpu") or {}).get("defaultCount")),
            memory_gb=num((it.get("memory") or {}).get("defaultCount")),
            tags=[provider, it.get("security") or "unknown-security"],
            attributes={"underlying_provider": provider, "socket": socket, "cloud_id": it.get("cloudId"),
                        "data_center": dc or None, "stock_status": stock, "security": it.get("security"),
                        "is_variable": prices.get("isVariable"), "source": "live"},
        )

    async def fetch_live(self, http) -> Any:
        url = f"{self.base_url}/api/v1/availability/gpus"
        headers = {"Authorization": f"Bearer {self.credential()}"}
        items: list[dict] = []
        for page_no in range(1, MAX_PAGES + 1):
            page = await http.get_json(url, params={"page": page_no, "page_size": PAGE_SIZE}, headers=headers)
            batch = page.get("items") or []
            items.extend(batch)
            if not batch or len(items) >= int(page.get("totalCount") or 0):
                return {"items": items, "totalCount": page.get("totalCount")}
        raise FetchError(f"no end of availability pages after {MAX_PAGES} pages from {url}")
