"""Google Cloud GPU machine types (A2 A100, A3 H100 / H100 Mega, G2 L4), on-demand and spot per region.

Snapshot: the catalog in effect on 2026-01-29 (Cyclenerd/google-cloud-pricing-cost-calculator, derived
from the Cloud Billing Catalog API), one row per (machine type, region): whole-machine USD/hour.

Live: the Cloud Billing Catalog API (https://cloud.google.com/billing/v1/how-tos/catalog-api),
GET https://cloudbilling.googleapis.com/v1/services/6F81-5844-456A/skus?key=API_KEY&currencyCode=USD
&pageSize=5000, following `nextPageToken` until none is returned; the API key is the secret
providers/gcp#apikey. Compute Engine prices a GPU machine as separate SKUs, so `parse` composes each
machine the way Cyclenerd's calculator does (build/mapping.csv + build/pricing.pl; gpuhunt's
providers/gcp.py does the same): per region,
    price = vCPUs x family Core SKU + GiB x family Ram SKU + GPUs x GPU SKU + bundled local SSD GiB x
            Local SSD SKU (per month) / 730
with the family SKUs "A2 Instance ...", "A3 Instance ..." (also for a3-megagpu, as Cyclenerd does),
"G2 Instance ..." (resourceGroup CPU / RAM), and "Spot Preemptible <same>" for spot. A2 Ultra and A3
machines include local SSD (375 GiB per A100 80GB, 750 GiB per H100: the x/730 fraction in the bundled
catalog's us-central1 prices is exactly that at 0.08 USD per GiB-month; a test checks it). The SKU unit price is the last tier of the first pricingInfo (as
pricing.pl). Machine shapes (GPU model and count, vCPUs, memory) come from the bundled catalog, as
Cyclenerd's come from its gcp.yml. Live rows get the snapshot rows' ids, so the two paths agree.
A GPU SKU of a model not priced here, a non-USD price or an unexpected unit is rejected with a reason;
a machine whose GPU is sold in a region but whose vCPU/RAM/SSD SKU is missing there is `missing_sku`.
No recorded SKU response exists in our data: the composition is tested with SKUs built from the
documented schema and Google's published list prices, reproducing catalog rows exactly.
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any, Iterable, Iterator

from adapters.base import SNAPSHOT_DIR, Adapter, FetchError, RecordError, dec, num
from domain.gpus import resolve
from domain.models import Offer

SERVICE_ID = "6F81-5844-456A"  # Compute Engine
HOURS_PER_MONTH = Decimal(730)  # Google's (and Cyclenerd's) month for per-month SKUs
MAX_PAGES = 100

# catalog gpu key -> GPU SKU description prefix (on-demand, spot), from Cyclenerd's build/mapping.csv
GPU_SKUS: dict[str, tuple[str, str]] = {
    "a100": ("Nvidia Tesla A100 GPU running", "Nvidia Tesla A100 GPU attached to Spot"),
    "a100-80gb": ("Nvidia Tesla A100 80GB GPU running", "Nvidia Tesla A100 80GB GPU attached to Spot"),
    "h100-80gb": ("Nvidia H100 80GB GPU running", "Nvidia H100 80GB GPU attached to Spot"),
    "h100-80gb-mega": ("Nvidia H100 80GB Mega GPU running", "Nvidia H100 80GB Mega GPU attached to Spot"),
    "l4": ("Nvidia L4 GPU running", "Nvidia L4 GPU attached to Spot"),
}
FAMILIES = {"a2": "A2 Instance", "a3": "A3 Instance", "g2": "G2 Instance"}  # vCPU and RAM SKU prefixes
SPOT_PREFIX = "Spot Preemptible "
LOCAL_SSD = ("SSD backed Local Storage", "SSD backed Local Storage attached to Spot Preemptible")
LOCAL_SSD_GIB_PER_GPU = {"a2-ultragpu": 375, "a3-highgpu": 750, "a3-megagpu": 750}
UNITS = {"cpu": "h", "ram": "GiBy.h", "gpu": "h", "ssd": "GiBy.mo"}
PRICINGS = {"OnDemand": "on_demand", "Preemptible": "spot"}


@lru_cache(maxsize=1)
def machine_shapes() -> dict[str, dict[str, Any]]:
    """instance -> {gpu_type, gpu_count, vcpu, memory_gb} from the bundled catalog (as gcp.yml for Cyclenerd)."""
    out: dict[str, dict[str, Any]] = {}
    for r in GcpProvider().load_snapshot():
        out.setdefault(r["instance"], {"gpu_type": r["gpu_type"], "gpu_count": num(r["gpu_count"]),
                                       "vcpu": num(r["vcpu"]), "memory_gb": num(r["memory_gb"])})
    return out


def local_ssd_gib(instance: str, gpu_count: float) -> int:
    series = instance.rsplit("-", 1)[0]
    return int(LOCAL_SSD_GIB_PER_GPU.get(series, 0) * gpu_count)


def unit_price(sku: dict) -> Decimal:
    """USD per usage unit: the last tier of the current pricingInfo (units + nanos / 1e9)."""
    expr = sku["pricingInfo"][0]["pricingExpression"]
    price = expr["tieredRates"][-1]["unitPrice"]
    if price.get("currencyCode", "USD") != "USD":
        raise RecordError("unsupported_currency", f"{price.get('currencyCode')!r}")
    return Decimal(str(price.get("units") or 0)) + Decimal(int(price.get("nanos") or 0)) / Decimal(10**9)


def classify(sku: dict) -> tuple[str, str, str] | None:
    """(component, key, pricing) a SKU prices in our machines, or None when it prices something else.

    component: cpu / ram (key = family), gpu (key = catalog gpu key), ssd (key 'local'). A GPU SKU of a
    model we do not price raises RecordError('unmapped_gpu_sku').
    """
    cat = sku.get("category") or {}
    pricing = PRICINGS.get(cat.get("usageType", ""))
    if pricing is None:
        return None  # commitments, reservations, ...
    desc, group = sku.get("description", ""), cat.get("resourceGroup", "")
    spot = pricing == "spot"
    if group in ("CPU", "RAM"):
        for fam, prefix in FAMILIES.items():
            if desc.startswith((SPOT_PREFIX + prefix) if spot else prefix):
                return ("cpu" if group == "CPU" else "ram"), fam, pricing
        return None
    if group == "GPU":
        for key, (od, sp) in GPU_SKUS.items():
            if desc.startswith(sp if spot else od):
                return "gpu", key, pricing
        raise RecordError("unmapped_gpu_sku", f"GPU SKU {desc!r} is not priced by this adapter")
    if cat.get("resourceFamily") == "Storage" and group == "LocalSSD":
        if desc.startswith(LOCAL_SSD[1]) if spot else (desc.startswith(LOCAL_SSD[0]) and "Spot" not in desc):
            return "ssd", "local", pricing
    return None


class GcpProvider(Adapter):
    NAME = "gcp"
    DISPLAY = "Google Cloud"
    API_ENDPOINT = "https://cloudbilling.googleapis.com"
    SNAPSHOT = "gcp_catalog.csv.gz"
    SNAPSHOT_DATE = "2026-01-29"
    SECRET = ("providers/gcp", "apikey")
    SECRET_REQUIRED = True

    def records(self, raw: Any) -> Iterable[dict]:
        if isinstance(raw, dict) and "skus" in raw:
            return self.compose(raw["skus"])
        return raw

    def record_id(self, rec: dict) -> str | None:
        if "_reject" in rec:
            return rec.get("skuId")
        return f"{rec.get('instance')}:{rec.get('region')}"

    # ---- live shape: SKUs -> catalog-shaped rows (pure) -------------------------------------------------
    def compose(self, skus: list[dict]) -> Iterator[dict]:
        prices: dict[tuple[str, str, str], dict[str, Decimal]] = {}
        for sku in skus:
            try:
                kind = classify(sku)
                if kind is None:
                    continue
                unit = sku["pricingInfo"][0]["pricingExpression"].get("usageUnit")
                if unit != UNITS[kind[0]]:
                    raise RecordError("unsupported_unit", f"{sku.get('description')!r} is priced per {unit!r}")
                price = unit_price(sku)
            except RecordError as exc:
                yield {"_reject": exc.reason, "_detail": str(exc), "skuId": sku.get("skuId")}
                continue
            except (KeyError, IndexError, TypeError, ValueError, ArithmeticError) as exc:
                yield {"_reject": "malformed", "_detail": f"{type(exc).__name__}: {exc}", "skuId": sku.get("skuId")}
                continue
            per_region = prices.setdefault(kind, {})
            for region in sku.get("serviceRegions") or []:
                per_region.setdefault(region, price)  # duplicates (Virginia / Northern Virginia): first wins
        for instance, shape in sorted(machine_shapes().items()):
            family, gpu_key, count = instance.split("-")[0], shape["gpu_type"], shape["gpu_count"]
            regions = set(prices.get(("gpu", gpu_key, "on_demand"), {})) | set(prices.get(("gpu", gpu_key, "spot"), {}))
            for region in sorted(regions):
                od, missing = self._machine_price(prices, instance, shape, family, region, "on_demand")
                spot, _ = self._machine_price(prices, instance, shape, family, region, "spot")
                yield {"instance": instance, "gpu_type": gpu_key, "gpu_count": count, "vcpu": shape["vcpu"],
                       "memory_gb": shape["memory_gb"], "region": region, "snapshot_date": None,
                       "price_ondemand": str(od) if od is not None else "", "price_spot": str(spot) if spot else "",
                       "_missing": missing, "_source": "live"}

    @staticmethod
    def _machine_price(prices: dict, instance: str, shape: dict, family: str, region: str,
                       pricing: str) -> tuple[Decimal | None, list[str]]:
        parts = [("cpu", family, Decimal(str(shape["vcpu"]))), ("ram", family, Decimal(str(shape["memory_gb"]))),
                 ("gpu", shape["gpu_type"], Decimal(str(shape["gpu_count"])))]
        ssd = local_ssd_gib(instance, shape["gpu_count"])
        if ssd:
            parts.append(("ssd", "local", Decimal(ssd) / HOURS_PER_MONTH))
        total, missing = Decimal(0), []
        for comp, key, qty in parts:
            p = prices.get((comp, key, pricing), {}).get(region)
            if p is None:
                missing.append(f"{comp}:{key}:{pricing}")
            else:
                total += qty * p
        return (None if missing else total), missing

    # ---- both shapes -----------------------------------------------------------------------------------
    def to_offers(self, rec: dict) -> list[Offer]:
        if "_reject" in rec:
            raise RecordError(rec["_reject"], rec.get("_detail", ""))
        instance, region = rec["instance"], rec["region"]
        if not (str(rec.get("price_ondemand") or "")).strip() and rec.get("_missing"):
            raise RecordError("missing_sku", f"{instance} in {region}: no SKU for {', '.join(rec['_missing'])}")
        count = num(rec["gpu_count"])
        if not count:
            raise RecordError("invalid_gpu_count", f"gpu_count {rec['gpu_count']!r}")
        gpu = resolve(rec["gpu_type"], hint=instance)
        attrs = {"machine_type": instance, "source_gpu": rec["gpu_type"], "snapshot_date": rec.get("snapshot_date")}
        if rec.get("_source"):
            attrs["source"] = rec["_source"]
        common = dict(name=f"{instance} ({int(count)}x {gpu.name})", gpu=gpu, gpu_count=count, region=region,
                      vcpu=num(rec.get("vcpu")), memory_gb=num(rec.get("memory_gb")), attributes=attrs)
        offers = [self.make_offer(external_id=f"{instance}:{region}", price=dec(rec["price_ondemand"]), **common)]
        if (rec.get("price_spot") or "").strip():
            offers.append(self.make_offer(external_id=f"{instance}:{region}:spot", price=dec(rec["price_spot"]),
                                          pricing="spot", **common))
        return offers

    async def fetch_live(self, http) -> Any:
        url = f"{self.base_url}/v1/services/{SERVICE_ID}/skus"
        params: dict[str, Any] = {"key": self.credential(), "currencyCode": "USD", "pageSize": 5000}
        skus: list[dict] = []
        for _ in range(MAX_PAGES):
            page = await http.get_json(url, params=params)
            skus.extend(page.get("skus", []))
            token = page.get("nextPageToken")
            if not token:  # "no token is returned when all items are listed"
                return {"skus": skus}
            params = {**params, "pageToken": token}
        raise FetchError(f"no end of SKU pages after {MAX_PAGES} pages from {url}")


# ---- recorded price history -------------------------------------------------------------------------------
# Cyclenerd's change log of the same catalog, 2022-02 .. 2026-01: one row per (date, machine type, region)
# with the on-demand and spot prices then in effect. It is history of the offers above: its rows carry the
# same external ids, and only rows before the snapshot date are history (the snapshot holds that day's).
PRICE_CHANGES = SNAPSHOT_DIR / "gcp_price_changes.csv.gz"


def history_cutoff() -> datetime:
    """The bundled catalog's date, as the end (exclusive) of the recorded history."""
    return datetime.fromisoformat(GcpProvider.SNAPSHOT_DATE).replace(tzinfo=timezone.utc)


def price_change_rows(batch: Any) -> Any:
    """A pandas frame of change-log rows -> (external_id, price, recorded_at) rows, spot as its own offer;
    empty and zero prices (not sold then) dropped."""
    import pandas as pd

    base = batch["instance"].astype(str) + ":" + batch["region"].astype(str)
    ts = pd.to_datetime(batch["date"].astype(str), utc=True)
    od = pd.DataFrame({"external_id": base, "price": batch["price_ondemand"], "recorded_at": ts})
    spot = pd.DataFrame({"external_id": base + ":spot", "price": batch["price_spot"], "recorded_at": ts})
    out = pd.concat([od, spot], ignore_index=True)
    out = out[pd.to_numeric(out["price"], errors="coerce") > 0]
    return out.assign(price=out["price"].astype(float).round(6))
