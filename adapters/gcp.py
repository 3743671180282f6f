"""Google Cloud GPU machine types (A2 A100, A3 H100 / H100 Mega, G2 L4), on-demand and spot per region.

Snapshot: the catalog in effect on 2026-01-29 (Cyclenerd/google-cloud-pricing-cost-calculator, derived
from the Cloud Billing Catalog API), one row per (machine type, region): whole-machine USD/hour.
Live: the Cloud Billing Catalog API prices GPUs, vCPUs and RAM as separate SKUs that must be composed
per machine family; no recorded SKU response exists in our data, so this adapter does not claim a live
path (`LiveUnsupported`) and serves the snapshot.
"""
from __future__ import annotations

from typing import Any, Iterable

from adapters.base import Adapter, LiveUnsupported, RecordError, dec, num
from domain.gpus import resolve
from domain.models import Offer


class GcpProvider(Adapter):
    NAME = "gcp"
    DISPLAY = "Google Cloud"
    API_ENDPOINT = "https://cloudbilling.googleapis.com/v1/services/6F81-5844-456A/skus"
    SNAPSHOT = "gcp_catalog.csv.gz"
    SNAPSHOT_DATE = "2026-01-29"
    SECRET = ("providers/gcp", "apikey")

    def records(self, raw: Any) -> Iterable[dict]:
        return raw

    def record_id(self, rec: dict) -> str | None:
        return f"{rec.get('instance')}:{rec.get('region')}"

    def to_offers(self, rec: dict) -> list[Offer]:
        instance, region = rec["instance"], rec["region"]
        count = num(rec["gpu_count"])
        if not count:
            raise RecordError("invalid_gpu_count", f"gpu_count {rec['gpu_count']!r}")
        gpu = resolve(rec["gpu_type"], hint=instance)
        common = dict(name=f"{instance} ({int(count)}x {gpu.name})", gpu=gpu, gpu_count=count, region=region,
                      vcpu=num(rec.get("vcpu")), memory_gb=num(rec.get("memory_gb")),
                      attributes={"machine_type": instance, "source_gpu": rec["gpu_type"],
                                  "snapshot_date": rec.get("snapshot_date")})
        offers = [self.make_offer(external_id=f"{instance}:{region}", price=dec(rec["price_ondemand"]), **common)]
        if (rec.get("price_spot") or "").strip():
            offers.append(self.make_offer(external_id=f"{instance}:{region}:spot", price=dec(rec["price_spot"]),
                                          pricing="spot", **common))
        return offers

    async def fetch_live(self, http) -> Any:
        raise LiveUnsupported("GCP live pricing needs SKU composition (no recorded Billing Catalog response); "
                              f"serving the bundled catalog of {self.SNAPSHOT_DATE}")
