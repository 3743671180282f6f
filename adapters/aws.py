"""Amazon EC2 GPU/accelerator instance types x region, on-demand USD/hour (reserved kept as an attribute).

Snapshot: instances.vantage.sh data as of 2026-01-21 (tsaol/aws-gpu), one row per (instance type, region).
`gpu_memory` is sometimes the instance total ("640 GB HBM3" for 8 H100) and sometimes per GPU
("24 GB GDDR6" for 4 A10G): we take whichever of value and value/count is nearer the model's memory.

Live: the Price List Query API, `GetProducts` (AWS Billing API reference; the bulk offer files at
pricing.us-east-1.amazonaws.com need no signature but are one multi-GB file per region, so they are not
used). POST https://api.pricing.us-east-1.amazonaws.com/ with `X-Amz-Target:
AWSPriceListService.GetProducts`, `Content-Type: application/x-amz-json-1.1` and body {ServiceCode:
AmazonEC2, FormatVersion: aws_v1, MaxResults: 100, NextToken, Filters: TERM_MATCH instanceFamily (one
query each for 'GPU instance' and 'Machine Learning ASIC Instances', the families of our catalog),
operatingSystem=Linux, tenancy=Shared, preInstalledSw=NA, capacitystatus=Used}, following `NextToken`;
signed with SigV4 (adapters/sigv4.py, service 'pricing', region us-east-1) from the secrets
providers/aws#access_key_id, #secret_access_key and optional #session_token. Each `PriceList` entry is
a JSON string {product: {attributes: {instanceType, regionCode, vcpu, memory, ...}}, terms: {OnDemand:
{<term>: {priceDimensions: {<dim>: {unit: 'Hrs', pricePerUnit: {USD}}}}}}}; `parse` turns it into the
snapshot's row shape. The Price List does not name the GPU model, so it comes from the bundled catalog's
instance type table; an instance type missing there is rejected (`unknown_instance_type`), as is a
product that is not plain on-demand RunInstances. AWS answers throttling with HTTP 400, which is not
retried. We hold no recorded GetProducts response: parsing is tested with products built from the
documented shape, never recorded ones.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any, Iterable, Iterator

from adapters import sigv4
from adapters.base import Adapter, FetchError, RecordError, dec, num
from domain.gpus import resolve
from domain.models import Offer

_SXM_FAMILIES = re.compile(r"^p(4|5|6)")
FAMILIES = ("GPU instance", "Machine Learning ASIC Instances")
TERM_FILTERS = {"operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}
TARGET = "AWSPriceListService.GetProducts"
MAX_PAGES = 200


@lru_cache(maxsize=1)
def instance_shapes() -> dict[str, dict[str, str]]:
    """instance type -> {gpu, gpu_count, gpu_memory, family} from the bundled catalog."""
    out: dict[str, dict[str, str]] = {}
    for r in AwsProvider().load_snapshot():
        out.setdefault(r["instance_type"], {k: r[k] for k in ("gpu", "gpu_count", "gpu_memory", "family")})
    return out


def on_demand_hourly(terms: dict) -> str:
    """The USD per hour of the product's on-demand term (RecordError when there is none)."""
    for term in (terms.get("OnDemand") or {}).values():
        for dim in (term.get("priceDimensions") or {}).values():
            if dim.get("unit") == "Hrs" and "USD" in (dim.get("pricePerUnit") or {}):
                return dim["pricePerUnit"]["USD"]
    raise RecordError("missing_price", "no on-demand hourly USD price dimension")


def product_row(item: Any) -> dict:
    """One PriceList entry (JSON string or object) -> a row in the snapshot's shape."""
    p = json.loads(item) if isinstance(item, str) else item
    a = p["product"]["attributes"]
    itype = a.get("instanceType", "")
    shape = instance_shapes().get(itype)
    if shape is None:
        raise RecordError("unknown_instance_type", f"{itype!r} has no GPU model in the bundled catalog")
    if a.get("operation", "RunInstances") != "RunInstances" or a.get("marketoption", "OnDemand") != "OnDemand":
        raise RecordError("unsupported_product", f"{itype}: operation {a.get('operation')!r}, "
                                                 f"market {a.get('marketoption')!r}")
    if not a.get("regionCode"):
        raise RecordError("missing_region", f"{itype} at {a.get('location')!r} has no regionCode")
    return {"instance_type": itype, "gpu": shape["gpu"], "gpu_count": a.get("gpu") or shape["gpu_count"],
            "gpu_memory": shape["gpu_memory"], "vcpu": a.get("vcpu"), "memory": a.get("memory"),
            "network": a.get("networkPerformance"), "storage": a.get("storage"),
            "family": a.get("instanceFamily") or shape["family"],
            "generation": "current" if a.get("currentGeneration", "Yes") == "Yes" else "previous",
            "region": a["regionCode"], "price_ondemand_usd_hr": on_demand_hourly(p.get("terms") or {}),
            "price_reserved_usd_hr": "", "_sku": p["product"].get("sku"), "_source": "live"}


class AwsProvider(Adapter):
    NAME = "aws"
    DISPLAY = "Amazon Web Services"
    API_ENDPOINT = "https://api.pricing.us-east-1.amazonaws.com"
    SNAPSHOT = "aws_instances.csv.gz"
    SNAPSHOT_DATE = "2026-01-21"
    SECRET = ("providers/aws", "access_key_id")
    SECRET_KEY = ("providers/aws", "secret_access_key")
    SESSION_TOKEN = ("providers/aws", "session_token")
    SECRET_REQUIRED = True

    def required_secrets(self) -> list[tuple[str, str]]:
        return [self.SECRET, self.SECRET_KEY]

    def records(self, raw: Any) -> Iterable[dict]:
        if isinstance(raw, dict) and "PriceList" in raw:
            return self._live_rows(raw["PriceList"])
        return raw

    @staticmethod
    def _live_rows(items: list) -> Iterator[dict]:
        seen: set[tuple[str, str]] = set()
        for item in items:
            try:
                row = product_row(item)
            except RecordError as exc:
                yield {"_reject": exc.reason, "_detail": str(exc)}
                continue
            except (KeyError, TypeError, ValueError) as exc:
                yield {"_reject": "malformed", "_detail": f"{type(exc).__name__}: {exc}"}
                continue
            key = (row["instance_type"], row["region"])
            if key in seen:
                yield {"_reject": "duplicate_product", "_detail": f"second product for {key}", **row}
                continue
            seen.add(key)
            yield row

    def record_id(self, rec: dict) -> str | None:
        if "instance_type" not in rec:
            return None
        return f"{rec.get('instance_type')}:{rec.get('region')}"

    def to_offers(self, rec: dict) -> list[Offer]:
        if "_reject" in rec:
            raise RecordError(rec["_reject"], rec.get("_detail", ""))
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
        if not (str(rec.get("price_ondemand_usd_hr") or "")).strip():
            raise RecordError("missing_price", f"{itype} in {region} has no on-demand price")
        attrs = {"instance_type": itype, "family": rec.get("family"), "network": rec.get("network"),
                 "storage": rec.get("storage"), "source_gpu": rec["gpu"],
                 "price_reserved_usd_hr": num(rec.get("price_reserved_usd_hr"))}
        if rec.get("_source"):
            attrs.update(source=rec["_source"], sku=rec.get("_sku"))
        return [self.make_offer(
            external_id=f"{itype}:{region}", name=f"{itype} ({count:g}x {gpu.name})", gpu=gpu, gpu_count=count,
            gpu_memory_gb=mem, price=dec(rec["price_ondemand_usd_hr"]), region=region, vcpu=num(rec.get("vcpu")),
            memory_gb=num(rec.get("memory")), storage_gb=None,
            tags=[rec.get("generation") or "current"], attributes=attrs,
        )]

    # ---- live --------------------------------------------------------------------------------------------
    def _signed(self, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET}
        return sigv4.sign("POST", f"{self.base_url}/", headers, body, access_key=self.credential() or "",
                          secret_key=self.secrets.get(*self.SECRET_KEY) or "", region="us-east-1",
                          service="pricing", session_token=self.secrets.get(*self.SESSION_TOKEN))

    async def fetch_live(self, http) -> Any:
        items: list = []
        for family in FAMILIES:
            filters = [{"Type": "TERM_MATCH", "Field": f, "Value": v}
                       for f, v in {"instanceFamily": family, **TERM_FILTERS}.items()]
            token: str | None = None
            for _ in range(MAX_PAGES):
                req = {"ServiceCode": "AmazonEC2", "FormatVersion": "aws_v1", "MaxResults": 100, "Filters": filters}
                if token:
                    req["NextToken"] = token
                body = json.dumps(req).encode()
                page = await http.post_json(f"{self.base_url}/", content=body, headers=self._signed(body))
                items.extend(page.get("PriceList") or [])
                token = page.get("NextToken")
                if not token:
                    break
            else:
                raise FetchError(f"no end of GetProducts pages for {family!r} after {MAX_PAGES} pages")
        return {"PriceList": items}
