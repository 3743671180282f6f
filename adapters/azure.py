"""Microsoft Azure GPU VMs from the Azure Retail Prices API (public, no auth).

API: GET https://prices.azure.com/api/retail/prices?$filter=... -> {"Items": [...], "NextPageLink": url|null};
we follow NextPageLink until null. `parse` takes the concatenated `Items` list (the recorded fixture is
exactly that list). Meters: '<sku> Spot' -> spot, '<sku> Low Priority' -> interruptible, else on-demand;
'... Windows' products are separate offers (the price includes the licence). GPU model and count come
from the VM size (the SKU table below, from Azure's size documentation).
"""
from __future__ import annotations

from typing import Any, Iterable

from adapters.base import Adapter, RecordError, dec
from domain.gpus import resolve
from domain.models import Offer

# armSkuName -> (GPU name as the size docs say it, GPUs per VM, vCPUs)
SKUS: dict[str, tuple[str, int, int]] = {
    "Standard_NC24ads_A100_v4": ("A100 PCIe 80GB", 1, 24),
    "Standard_NC48ads_A100_v4": ("A100 PCIe 80GB", 2, 48),
    "Standard_NC96ads_A100_v4": ("A100 PCIe 80GB", 4, 96),
    "Standard_ND96asr_v4": ("A100 SXM4 40GB", 8, 96),
    "Standard_ND96amsr_A100_v4": ("A100 SXM4 80GB", 8, 96),
    "Standard_NC40ads_H100_v5": ("H100 NVL", 1, 40),
    "Standard_NC80adis_H100_v5": ("H100 NVL", 2, 80),
    "Standard_ND96isr_H100_v5": ("H100 SXM5 80GB", 8, 96),
    "Standard_ND96isr_H200_v5": ("H200 SXM5 141GB", 8, 96),
    "Standard_ND96isr_MI300X_v5": ("MI300X OAM", 8, 96),
}


class AzureProvider(Adapter):
    NAME = "azure"
    DISPLAY = "Microsoft Azure"
    API_ENDPOINT = "https://prices.azure.com"
    SNAPSHOT = "azure_retail_items.json.gz"
    SNAPSHOT_DATE = "2026"

    def records(self, raw: Any) -> Iterable[dict]:
        return raw["Items"] if isinstance(raw, dict) else raw

    def record_id(self, rec: dict) -> str | None:
        return f"{rec.get('armSkuName')}:{rec.get('armRegionName')}:{rec.get('meterName')}"

    def to_offers(self, rec: dict) -> list[Offer]:
        sku, region, meter = rec["armSkuName"], rec["armRegionName"], rec["meterName"]
        if sku not in SKUS:
            raise RecordError("unknown_sku", f"VM size {sku!r} is not a known GPU size")
        if rec.get("unitOfMeasure", "1 Hour") != "1 Hour":
            raise RecordError("unsupported_unit", f"unit {rec.get('unitOfMeasure')!r}")
        if rec.get("type", "Consumption") != "Consumption":
            raise RecordError("unsupported_price_type", f"type {rec.get('type')!r}")
        gpu_name, count, vcpu = SKUS[sku]
        gpu = resolve(gpu_name)
        pricing = "spot" if meter.endswith(" Spot") else "interruptible" if meter.endswith(" Low Priority") else "on_demand"
        os_ = "windows" if "windows" in rec.get("productName", "").lower() else "linux"
        size = sku.removeprefix("Standard_")
        return [self.make_offer(
            external_id=f"{sku}:{region}:{os_}:{pricing}", name=f"{size} ({count}x {gpu.name}, {os_})", gpu=gpu,
            gpu_count=count, price=dec(rec["retailPrice"]), pricing=pricing, region=region, vcpu=vcpu, tags=[os_],
            attributes={"sku": sku, "meter": meter, "product": rec.get("productName"), "os": os_},
        )]

    async def fetch_live(self, http) -> Any:
        skus = " or ".join(f"armSkuName eq '{s}'" for s in SKUS)
        params = {"$filter": f"serviceName eq 'Virtual Machines' and priceType eq 'Consumption' and ({skus})"}
        url: str | None = f"{self.base_url}/api/retail/prices"
        items: list[dict] = []
        for _ in range(200):  # pages of 100-1000 items; a bound against a looping NextPageLink
            if url is None:
                break
            page = await http.get_json(url, params=params)
            items.extend(page.get("Items", []))
            url, params = page.get("NextPageLink"), None
        return items
