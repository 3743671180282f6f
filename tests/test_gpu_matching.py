"""One meaning of a user's GPU filter everywhere: search, export and the price stream."""
from __future__ import annotations

import pytest

from domain import gpu_alias
from domain.gpus import GPUS, matching_gpus, resolve
from gateway.ws.filters import PriceFilter, UpdateView


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


# A form or memory word on a short model name narrows that model; it never widens to longer names that start
# the same way (A10 -> A100, A10G; L4 -> L40, L40S).
@pytest.mark.parametrize("query,expected", [
    ("A10 PCIe", ["A10"]),
    ("a10-pcie", ["A10"]),
    ("A10 24GB", ["A10"]),
    ("L4 PCIe", ["L4"]),
    ("L4 24GB", ["L4"]),
    ("L40 PCIe", ["L40"]),
    ("A10G PCIe", ["A10G"]),
    ("T4 PCIe", ["T4"]),
    ("A16 PCIe", ["A16"]),
])
def test_short_model_with_form_or_memory_word_means_that_model_only(query, expected):
    assert matching_gpus(query) == expected
    assert resolve(query).name == expected[0]


def test_short_model_with_form_word_in_search_and_stream():
    known = ["A10", "A10G", "A100-80GB-PCIe", "A100-40GB-PCIe", "L4", "L40", "L40S"]
    matched, unknown = gpu_alias.resolve(["A10 PCIe", "L4 PCIe"], known)
    assert matched == {"A10 PCIe": ["A10"], "L4 PCIe": ["L4"]} and unknown == []

    def ok(query, gpu):
        f = PriceFilter(gpu_type=query).compiled()
        return f.matches(UpdateView({"gpu_type": gpu, "region": "us-east-1", "new_price": "1.0"}))

    assert ok("A10 PCIe", "A10") and ok("A10 PCIe", "A10_24GB_PCIe")
    assert not any(ok("A10 PCIe", g) for g in ("A100-80GB-PCIe", "A100_80GB_PCIe", "A10G", "NVIDIA A10G"))
    assert ok("L4 PCIe", "L4") and ok("L4 PCIe", "L4_24GB_PCIe")
    assert not any(ok("L4 PCIe", g) for g in ("L40", "L40S", "L40S_48GB", "NVIDIA L40S"))
