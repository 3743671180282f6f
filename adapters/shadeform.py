"""The clouds listed through Shadeform's catalog: one adapter class per underlying cloud.

Snapshot: SkyPilot's catalog of Shadeform (`catalogs/v7/shadeform/vms.csv`): InstanceType
'<cloud>_<type>', AcceleratorName, AcceleratorCount, vCPUs, MemoryGiB, Price (whole instance USD/hour),
Region, SpotPrice. Each cloud's adapter keeps the rows of its own prefix; prices are attributed to the
operating cloud, not to Shadeform.
Live: GET https://api.shadeform.ai/v1/instances/types?cloud=<cloud> with header X-API-KEY returns
{"instance_types": [{cloud, shade_instance_type, configuration{gpu_type, num_gpus, vcpus, memory_in_gb,
storage_in_gb, vram_per_gpu_in_gb, interconnect}, hourly_price (cents), availability[{region,
available}]}]} per Shadeform's API reference; it is turned into the same rows. We hold no recorded
response of it, so that conversion is untested against real data (the snapshot path is tested).
"""
from __future__ import annotations

from typing import Any, Iterable

from adapters.base import Adapter, RecordError, dec, num
from domain.gpus import resolve
from domain.models import Offer


class ShadeformCloud(Adapter):
    """Base of the per-cloud adapters; `CLOUD` is the InstanceType prefix and Shadeform's cloud id."""

    CLOUD = ""
    API_ENDPOINT = "https://api.shadeform.ai"
    SNAPSHOT = "shadeform_vms.csv.gz"
    SNAPSHOT_DATE = "2026"
    SECRET = ("providers/shadeform", "apikey")
    SECRET_REQUIRED = True

    def records(self, raw: Any) -> Iterable[dict]:
        prefix = self.CLOUD + "_"
        return [r for r in raw if r.get("InstanceType", "").startswith(prefix)]

    def record_id(self, rec: dict) -> str | None:
        return f"{rec.get('InstanceType')}:{rec.get('Region')}"

    def to_offers(self, rec: dict) -> list[Offer]:
        itype, region = rec["InstanceType"], rec["Region"]
        count = num(rec["AcceleratorCount"])
        if not count:
            raise RecordError("invalid_gpu_count", f"AcceleratorCount {rec['AcceleratorCount']!r}")
        mem = num(rec.get("VramPerGpuGiB"))
        gpu = resolve(rec["AcceleratorName"], memory_gb=mem, hint=itype)
        common = dict(name=f"{itype.split('_', 1)[1]} ({count:g}x {gpu.name})", gpu=gpu, gpu_count=count,
                      gpu_memory_gb=mem, region=region, vcpu=num(rec.get("vCPUs")),
                      memory_gb=num(rec.get("MemoryGiB")), storage_gb=num(rec.get("StorageGiB")),
                      availability="down" if rec.get("Available") == "false" else "up",
                      attributes={"instance_type": itype, "source_gpu": rec["AcceleratorName"], "via": "shadeform"})
        offers = [self.make_offer(external_id=f"{itype}:{region}", price=dec(rec["Price"]), **common)]
        if (rec.get("SpotPrice") or "").strip() and num(rec["SpotPrice"]):
            offers.append(self.make_offer(external_id=f"{itype}:{region}:spot", price=dec(rec["SpotPrice"]),
                                          pricing="spot", **common))
        return offers

    async def fetch_live(self, http) -> Any:
        body = await http.get_json(f"{self.base_url}/v1/instances/types", params={"cloud": self.CLOUD},
                                   headers={"X-API-KEY": self.credential() or ""})
        rows = []
        for t in body.get("instance_types", []):
            cfg = t.get("configuration", {})
            for av in t.get("availability", []):
                rows.append({
                    "InstanceType": f"{t.get('cloud', self.CLOUD)}_{t['shade_instance_type']}",
                    "AcceleratorName": cfg.get("gpu_type", ""), "AcceleratorCount": cfg.get("num_gpus"),
                    "vCPUs": cfg.get("vcpus"), "MemoryGiB": cfg.get("memory_in_gb"),
                    "StorageGiB": cfg.get("storage_in_gb"), "VramPerGpuGiB": cfg.get("vram_per_gpu_in_gb"),
                    "Price": (num(t.get("hourly_price")) or 0) / 100, "Region": av.get("region", ""),
                    "SpotPrice": "", "Available": "true" if av.get("available") else "false",
                })
        return rows


def _cloud(cloud: str, display: str) -> type[ShadeformCloud]:
    return type(f"{cloud.title().replace('_', '')}Provider", (ShadeformCloud,),
                {"NAME": cloud, "CLOUD": cloud, "DISPLAY": display, "__module__": __name__,
                 "__doc__": f"{display}, as listed through Shadeform."})


# The InstanceType prefixes of the catalog (PROVENANCE.txt): each is its own provider.
LambdaProvider = _cloud("lambdalabs", "Lambda")
CrusoeProvider = _cloud("crusoe", "Crusoe")
NebiusProvider = _cloud("nebius", "Nebius")
VultrProvider = _cloud("vultr", "Vultr")
PaperspaceProvider = _cloud("paperspace", "Paperspace")
DatacrunchProvider = _cloud("datacrunch", "DataCrunch")
HyperstackProvider = _cloud("hyperstack", "Hyperstack")
MassedComputeProvider = _cloud("massedcompute", "Massed Compute")
ScalewayProvider = _cloud("scaleway", "Scaleway")
DigitalOceanProvider = _cloud("digitalocean", "DigitalOcean")
CudoProvider = _cloud("cudo", "Cudo Compute")
LatitudeProvider = _cloud("latitude", "Latitude.sh")
DenvrProvider = _cloud("denvr", "Denvr Dataworks")
ExcessSupplyProvider = _cloud("excesssupply", "Excess Supply")
ImwtProvider = _cloud("imwt", "IMWT")
BoostrunProvider = _cloud("boostrun", "Boost Run")
EvergreenProvider = _cloud("evergreen", "Evergreen")
AmayaProvider = _cloud("amaya", "Amaya")

CLOUDS: list[type[ShadeformCloud]] = [
    LambdaProvider, CrusoeProvider, NebiusProvider, VultrProvider, PaperspaceProvider, DatacrunchProvider,
    HyperstackProvider, MassedComputeProvider, ScalewayProvider, DigitalOceanProvider, CudoProvider,
    LatitudeProvider, DenvrProvider, ExcessSupplyProvider, ImwtProvider, BoostrunProvider, EvergreenProvider,
    AmayaProvider,
]
