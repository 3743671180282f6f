"""RunPod GPU types from its GraphQL API (`gpuTypes`): secure-cloud and community-cloud prices per GPU.

API: POST https://api.runpod.io/graphql?api_key=KEY with {"query": "query { gpuTypes { ... } }"}; the
response is {"data": {"gpuTypes": [...]}} (the recorded fixture is exactly that). Prices are per GPU per
hour (for a MIG slice: per slice); a price of 0 means the type is not offered in that cloud (counted as `not_offered`). RunPod's
`gpuTypes` carries no region: offers are region 'global'. MIG slices are fractional GPUs.
"""
from __future__ import annotations

from typing import Any, Iterable

from adapters.base import Adapter, RecordError, dec, num
from domain.gpus import resolve
from domain.models import Offer

QUERY = "query GpuTypes { gpuTypes { id displayName memoryInGb securePrice communityPrice } }"


class RunpodProvider(Adapter):
    NAME = "runpod"
    DISPLAY = "RunPod"
    API_ENDPOINT = "https://api.runpod.io"
    SNAPSHOT = "runpod_gputypes.json.gz"
    SNAPSHOT_DATE = "2026"
    SECRET = ("providers/runpod", "apikey")
    SECRET_REQUIRED = True

    def records(self, raw: Any) -> Iterable[dict]:
        if raw.get("errors"):
            raise ValueError(f"GraphQL errors: {raw['errors']}")
        for t in raw["data"]["gpuTypes"]:
            for cloud in ("secure", "community"):
                yield {**t, "_cloud": cloud}

    def record_id(self, rec: dict) -> str | None:
        return f"{rec.get('id')}:{rec.get('_cloud')}"

    def to_offers(self, rec: dict) -> list[Offer]:
        cloud = rec["_cloud"]
        price = rec.get(f"{cloud}Price")
        if not price:
            raise RecordError("not_offered", f"{rec['id']} has no {cloud} price")
        mem = num(rec.get("memoryInGb")) or None
        gpu = resolve(rec["id"], memory_gb=mem)
        count = 1.0
        if mem and "mig" in rec["id"].lower():
            count = round(mem / gpu.memory_gb, 4)  # a MIG slice is a fraction of one GPU
        return [self.make_offer(
            external_id=f"{rec['id']}:{cloud}", name=f"{rec['displayName']} ({cloud} cloud)", gpu=gpu,
            gpu_count=count, gpu_memory_gb=mem, price=dec(price), region="global",
            tags=[f"{cloud}-cloud"], attributes={"cloud": cloud, "gpu_type_id": rec["id"],
                                                  "display_name": rec["displayName"]},
        )]

    async def fetch_live(self, http) -> Any:
        return await http.post_json(f"{self.base_url}/graphql", params={"api_key": self.credential()},
                                    json={"query": QUERY})
