"""Prime Intellect's aggregated GPU marketplace (28 days, 2025-10-19..11-16, polled every 30 min - 4 h).

Snapshot: `by_provider.csv` of tugot17/gpu-price-tracker: per poll x GPU x socket x underlying provider,
the offer count and min/avg price per GPU-hour. Each (underlying provider, GPU, socket) is one offer here:
its price is the poll's minimum, availability 'up' while any are listed. `parse` of the whole series
takes the latest poll; `gpubroker replay` feeds the polls one by one as live price changes.
Live: Prime Intellect's availability API needs an account key and we hold no recorded response of it,
so there is no live path (`LiveUnsupported`).
"""
from __future__ import annotations

from typing import Any, Iterable

from adapters.base import Adapter, LiveUnsupported, RecordError, dec, num
from domain.gpus import resolve
from domain.models import Offer


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
        if not raw:
            return []
        latest = max(r["timestamp"] for r in raw)
        return [r for r in raw if r["timestamp"] == latest]

    def record_id(self, rec: dict) -> str | None:
        return f"{rec.get('provider')}:{rec.get('gpu_type')}:{rec.get('socket_type')}"

    def to_offers(self, rec: dict) -> list[Offer]:
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

    async def fetch_live(self, http) -> Any:
        raise LiveUnsupported("no recorded Prime Intellect API response; serving the bundled series "
                              f"(last poll {self.SNAPSHOT_DATE})")
