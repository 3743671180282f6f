"""Amazon EC2 GPU/accelerator instance types x region, on-demand USD/hour (reserved kept as an attribute).

Snapshot: instances.vantage.sh data as of 2026-01-21 (tsaol/aws-gpu), one row per (instance type, region).
`gpu_memory` is sometimes the instance total ("640 GB HBM3" for 8 H100) and sometimes per GPU
("24 GB GDDR6" for 4 A10G): we take whichever of value and value/count is nearer the model's memory.
Live: the AWS Price List API needs SigV4 credentials and returns multi-GB offer files; no recorded
response exists in our data, so this adapter serves the snapshot (`LiveUnsupported`).
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from adapters.base import Adapter, LiveUnsupported, RecordError, dec, num
from domain.gpus import resolve
from domain.models import Offer

_SXM_FAMILIES = re.compile(r"^p(4|5|6)")

class AwsProvider(Adapter):
    NAME = "aws"
    DISPLAY = "Amazon Web Services"
    API_ENDPOINT = "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonEC2/current"
    SNAPSHOT = "aws_instances.csv.gz"
    SNAPSHOT_DATE = "2026-01-21"
    SECRET = ("providers/aws", "access_key_id")

    def records(self, raw: Any) -> Iterable[dict]:
        return raw

    def record_id(self, rec: dict) -> str | None:
        return f"{rec.get('instance_type')}:{rec.get('region')}"

    def to_offers(self, rec: dict) -> list[Offer]:
        itype, region = rec["instance_type"], rec["region"]
        count = num(rec["gpu_count"])
        if not count:
            raise RecordError("invalid_gpu_count", f"gpu_count {rec['gpu_count']!r}")
        hint = "SXM" if _SXM_FAMILIES.match(itype) else None
        mem = num(rec.get("gpu_memory"))
        gpu = resolve(rec["gpu"], hint=hint)
        if mem is not None and count >= 1:
            # total or per GPU? choose the reading closer to the model's own memory
            mem = min((mem, mem / count), key=lambda m: abs(m - gpu.memory_gb))
            gpu = resolve(rec["gpu"], memory_gb=mem, hint=hint)
        if not (rec.get("price_ondemand_usd_hr") or "").strip():
            raise RecordError("missing_price", f"{itype} in {region} has no on-demand price")
        return [self.make_offer(
            external_id=f"{itype}:{region}", name=f"{itype} ({count:g}x {gpu.name})", gpu=gpu, gpu_count=count,
            gpu_memory_gb=mem, price=dec(rec["price_ondemand_usd_hr"]), region=region, vcpu=num(rec.get("vcpu")),
            memory_gb=num(rec.get("memory")), storage_gb=None,
            tags=[rec.get("generation") or "current"],
            attributes={"instance_type": itype, "family": rec.get("family"), "network": rec.get("network"),
                        "storage": rec.get("storage"), "source_gpu": rec["gpu"],
                        "price_reserved_usd_hr": num(rec.get("price_reserved_usd_hr"))},
        )]

    async def fetch_live(self, http) -> Any:
        raise LiveUnsupported("AWS Price List API needs SigV4 credentials and multi-GB offer files (no recorded "
                              f"response); serving the bundled catalog of {self.SNAPSHOT_DATE}")
