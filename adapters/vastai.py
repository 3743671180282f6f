"""Vast.ai marketplace offers from its bundles search API.

API: GET https://console.vast.ai/api/v0/bundles/?q=<json query> (optional `Authorization: Bearer KEY`)
-> {"offers": [...]}, one query per GPU model as the recording collector did; `parse` takes
{"offers_by_model": {model: offers}} (the recorded files' shape) or a single {"offers": [...]} page.
Per offer we keep: `dph_total` as the on-demand price of the whole offer (num_gpus GPUs), `min_bid` as a
separate interruptible offer (`<id>:bid`), `rented` -> availability 'down', and reliability, NVLink and
PCIe bandwidth, verification and hosting type as attributes.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from adapters.base import Adapter, RecordError, dec, num
from domain.gpus import resolve
from domain.models import Offer

MODELS = ["H100 SXM", "A100 SXM", "A100 PCIE", "H200", "H200 NVL", "H100 PCIE", "Tesla V100", "L40S", "RTX 4090"]
_KEEP = ("reliability2", "bw_nvlink", "pcie_bw", "pci_gen", "min_bid", "rented", "rentable", "verification",
         "hosting_type", "dlperf", "inet_up", "inet_down", "compute_cap", "cpu_name", "machine_id", "host_id",
         "geolocation", "gpu_frac", "cuda_max_good", "disk_bw", "storage_cost", "dph_base")


class VastaiProvider(Adapter):
    NAME = "vastai"
    DISPLAY = "Vast.ai"
    API_ENDPOINT = "https://console.vast.ai"
    SNAPSHOT = "vast_bundles.json.gz"
    SNAPSHOT_DATE = "2026-03-06"
    SECRET = ("providers/vastai", "apikey")

    def records(self, raw: Any) -> Iterable[dict]:
        if "offers_by_model" in raw:
            for offers in raw["offers_by_model"].values():
                yield from offers
        else:
            yield from raw["offers"]

    def to_offers(self, rec: dict) -> list[Offer]:
        oid = str(rec["id"])
        count = num(rec.get("num_gpus"))
        if not count:
            raise RecordError("invalid_gpu_count", f"num_gpus {rec.get('num_gpus')!r}")
        region = (rec.get("geolocation") or "").strip()
        if not region or region == ",":
            raise RecordError("missing_region", f"offer {oid} has no geolocation")
        mem = (num(rec.get("gpu_ram")) or 0) / 1024 or None  # MiB -> GiB
        gpu = resolve(rec["gpu_name"], memory_gb=mem)
        frac = num(rec.get("gpu_frac")) or 1.0
        rented = bool(rec.get("rented"))
        attrs = {k: rec.get(k) for k in _KEEP if k in rec}
        attrs["reliability"] = attrs.pop("reliability2", None)
        common = dict(
            name=f"{count:g}x {rec['gpu_name']} ({region})", gpu=gpu, gpu_count=count, gpu_memory_gb=mem,
            region=region, availability="down" if rented or rec.get("rentable") is False else "up",
            vcpu=num(rec.get("cpu_cores_effective")),
            # cpu_ram is the machine's RAM in MB; an offer gets its gpu_frac share of it
            memory_gb=round((num(rec.get("cpu_ram")) or 0) / 1024 * frac, 2) or None,
            storage_gb=num(rec.get("disk_space")),
            tags=["verified" if rec.get("verification") == "verified" else "unverified",
                  "datacenter" if rec.get("hosting_type") == 1 else "community"],
            attributes=attrs,
        )
        offers = [self.make_offer(external_id=oid, price=dec(rec["dph_total"]), **common)]
        if num(rec.get("min_bid")):
            offers.append(self.make_offer(external_id=f"{oid}:bid", price=dec(rec["min_bid"], "min_bid"),
                                          pricing="interruptible", **common))
        return offers

    async def fetch_live(self, http) -> Any:
        headers = {"Authorization": f"Bearer {self.credential()}"} if self.credential() else {}
        out: dict[str, list] = {}
        for model in MODELS:
            q = {"gpu_name": {"eq": model}, "rentable": {"eq": True}, "limit": 1000}
            page = await http.get_json(f"{self.base_url}/api/v0/bundles/", params={"q": json.dumps(q)},
                                       headers=headers)
            out[model] = page.get("offers", [])
        return {"offers_by_model": out}
