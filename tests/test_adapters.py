"""Each registered adapter parses its recorded data into valid offers (pure; no services)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from adapters import registry
from adapters.base import RecordError
from domain.models import Offer

# The recorded-data expectations of every provider: (min offers, a GPU type it must list).
EXPECTED = {
    "gcp": (1600, "A100-80GB-SXM"), "aws": (1100, "A10G"), "azure": (80, "H100-NVL"), "runpod": (80, "H100-SXM"),
    "vastai": (450, "RTX-4090"), "lambdalabs": (4, None), "crusoe": (14, "A100-80GB-SXM"), "nebius": (7, None),
    "vultr": (38, "A16"), "paperspace": (18, "V100-32GB"), "datacrunch": (21, "B200"), "hyperstack": (24, None),
    "massedcompute": (29, None), "scaleway": (24, None), "digitalocean": (5, None), "cudo": (25, None),
    "latitude": (3, None), "denvr": (5, None), "excesssupply": (17, "H200-SXM"), "imwt": (4, None),
    "boostrun": (3, None), "evergreen": (2, None), "amaya": (1, None), "primeintellect": (20, "H100-SXM"),
    "sandbox": (8, "H100-SXM"),
}


def test_registry_has_15_or_more_providers_and_each_has_a_recorded_data_test():
    names = registry.names()
    assert len(names) >= 15
    missing = sorted(set(names) - set(EXPECTED))
    assert not missing, f"providers without a recorded-data test: {missing}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_adapter_parses_its_recorded_data(name):
    adapter = registry.build(name)
    result = adapter.parse(adapter.load_snapshot())
    min_offers, must_have = EXPECTED[name]
    assert len(result.offers) >= min_offers
    ids = [o.external_id for o in result.offers]
    assert len(ids) == len(set(ids)), "external ids must be unique per provider"
    for o in result.offers:
        assert isinstance(o, Offer) and o.provider == name
        Offer.model_validate(o.model_dump())  # round-trips through validation
        assert o.price_per_hour > 0 and o.gpu_count > 0 and o.gpu_memory_gb
        assert o.price_per_gpu_hour == (o.price_per_hour / Decimal(str(o.gpu_count))).quantize(Decimal("0.000001"))
        assert o.region and (o.region == "global" or (o.country and o.continent))
    if must_have:
        assert must_have in {o.gpu_type for o in result.offers}


def test_gcp_spot_prices_are_separate_offers():
    r = registry.build("gcp").parse(registry.build("gcp").load_snapshot())
    by_id = {o.external_id: o for o in r.offers}
    od, spot = by_id["a2-highgpu-1g:asia-east1"], by_id["a2-highgpu-1g:asia-east1:spot"]
    assert od.pricing.value == "on_demand" and spot.pricing.value == "spot"
    assert od.price_per_hour == Decimal("3.790142") and spot.price_per_hour == Decimal("0.827730")
    assert od.country == "TW" and od.continent == "AS" and od.gpu_type == "A100-40GB-SXM"


def test_azure_meters_map_to_pricing_and_sku_to_gpus():
    r = registry.build("azure").parse(registry.build("azure").load_snapshot())
    first = next(o for o in r.offers if o.external_id.startswith("Standard_NC80adis_H100_v5:germanywestcentral"))
    assert first.pricing.value == "interruptible" and first.gpu_count == 2 and first.gpu_type == "H100-NVL"
    assert first.price_per_hour == Decimal("3.63") and first.price_per_gpu_hour == Decimal("1.815")
    assert {o.pricing.value for o in r.offers} == {"on_demand", "spot", "interruptible"}
    assert {o.gpu_type for o in r.offers if "ND96isr_MI300X" in o.external_id} == {"MI300X"}


def test_vast_keeps_reliability_bandwidth_min_bid_and_rented():
    raw = registry.build("vastai").load_snapshot()
    r = registry.build("vastai").parse(raw)
    o = next(o for o in r.offers if o.attributes.get("bw_nvlink"))
    for key in ("reliability", "bw_nvlink", "pcie_bw", "min_bid", "rented"):
        assert key in o.attributes
    bid = {x.external_id: x for x in r.offers}[o.external_id + ":bid"]
    assert bid.pricing.value == "interruptible" and float(bid.price_per_hour) == pytest.approx(o.attributes["min_bid"], abs=1e-6)
    # a rented offer is not available
    rec = dict(next(iter(raw["offers_by_model"]["RTX 4090"])), rented=True)
    offers = registry.build("vastai").to_offers(rec)
    assert {x.availability.value for x in offers} == {"down"}


def test_malformed_records_are_rejected_with_a_reason_and_the_rest_parse():
    adapter = registry.build("runpod")
    raw = adapter.load_snapshot()
    bad = {"data": {"gpuTypes": raw["data"]["gpuTypes"][:3] + [
        {"id": "Voodoo 5 6000", "displayName": "V5", "memoryInGb": 0.064, "securePrice": 9, "communityPrice": 0},
        {"id": "NVIDIA L4", "displayName": "L4", "memoryInGb": 24, "securePrice": "abc", "communityPrice": -1},
        {"displayName": "no id", "securePrice": 1},
    ]}}
    r = adapter.parse(bad)
    reasons = r.reject_counts()
    assert reasons["unknown_gpu"] == 1 and reasons["invalid_price"] == 2 and reasons["malformed"] >= 1
    assert len(r.offers) >= 4


def test_record_error_reason():
    assert RecordError("x_y").reason == "x_y"
