"""One meaning of a user's GPU filter everywhere: search, export and the price stream."""
from __future__ import annotations

import pytest

from domain import gpu_alias
from domain.gpus import GPUS, matching_gpus
from gateway.ws_filters import PriceFilter, UpdateView


@pytest.mark.parametrize("query,expected", [
    ("H100", {"H100-SXM", "H100-PCIe", "H100-NVL"}),
    ("h100 sxm", {"H100-SXM"}),
    ("H100 NVL", {"H100-NVL"}),
    ("A100", {"A100-80GB-SXM", "A100-40GB-SXM", "A100-80GB-PCIe", "A100-40GB-PCIe"}),
    ("A100-80G", {"A100-80GB-SXM", "A100-80GB-PCIe"}),
    ("a100-80gb", {"A100-80GB-SXM", "A100-80GB-PCIe"}),
    ("A100 SXM4 80GB", {"A100-80GB-SXM"}),
    ("NVIDIA A100-SXM4-80GB", {"A100-80GB-SXM"}),
    ("A10", {"A10"}),
    ("RTX 4090", {"RTX-4090"}),
    ("Tesla V100-PCIE-16GB", {"V100-16GB"}),
    ("not-a-gpu", set()),
    ("", set()),
])
def test_matching_gpus(query, expected):
    assert set(matching_gpus(query)) == expected


def test_every_canonical_name_means_itself():
    for name in GPUS:
        assert matching_gpus(name) == [name]


def test_search_alias_resolution_against_catalog_names():
    known = ["H100-SXM", "H100-PCIe", "A100-80GB-SXM", "A100-80GB-PCIe", "L4"]
    matched, unknown = gpu_alias.resolve(["h100", "NVIDIA A100-SXM4-80GB", "H200", "zzz"], known)
    assert matched == {"h100": ["H100-SXM", "H100-PCIe"], "NVIDIA A100-SXM4-80GB": ["A100-80GB-SXM"], "H200": []}
    assert unknown == ["zzz"]


def test_stream_filter_uses_the_same_aliases_and_catalog_geography():
    f = PriceFilter(gpu_type=["NVIDIA A100-SXM4-80GB", "H100"], continent="EU").compiled()

    def ok(gpu, region):
        return f.matches(UpdateView({"gpu_type": gpu, "region": region, "new_price": "2.5"}))

    assert ok("A100-80GB-SXM", "europe-west4")
    assert ok("H100-NVL", "eu-central-1")
    assert not ok("A100-40GB-SXM", "europe-west4")
    assert not ok("H100-PCIe", "us-east-1")
    assert not ok("A10", "europe-west4")
    assert ok("H100-SXM", "Czechia, CZ, EU")  # Vast.ai geolocation, through domain.geo
