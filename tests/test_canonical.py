"""GPU-name canonicalization and region geography over every bundled source (no services needed)."""
from __future__ import annotations

import csv
import gzip
import io
import json

import pytest

from adapters import registry
from adapters.base import SNAPSHOT_DIR
from domain.geo import UnknownRegion, locate
from domain.gpus import GPUS, UnknownGpu, resolve


def _csv(name: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(gzip.decompress((SNAPSHOT_DIR / name).read_bytes()).decode())))


def _json(name: str):
    return json.loads(gzip.decompress((SNAPSHOT_DIR / name).read_bytes()))


@pytest.mark.parametrize("raw,mem,hint,expected", [
    ("A100-80G", None, None, "A100-80GB-SXM"),
    ("A100 SXM4 80GB", None, None, "A100-80GB-SXM"),
    ("a100-80gb", None, None, "A100-80GB-SXM"),
    ("NVIDIA A100-SXM4-80GB", None, None, "A100-80GB-SXM"),
    ("NVIDIA A100-SXM4-40GB", None, None, "A100-40GB-SXM"),
    ("NVIDIA A100 80GB PCIe", None, None, "A100-80GB-PCIe"),
    ("A100 PCIE", 40, None, "A100-40GB-PCIe"),
    ("a100", None, None, "A100-40GB-SXM"),
    ("NVIDIA A100", 80, "SXM", "A100-80GB-SXM"),
    ("H100 NVL", None, None, "H100-NVL"),
    ("NVIDIA H100 80GB HBM3", 80, None, "H100-SXM"),
    ("h100-80gb-mega", None, None, "H100-SXM"),
    ("H100", None, "hyperstack_H100-pcie", "H100-PCIe"),
    ("H100_80GB", None, "PCIe", "H100-PCIe"),
    ("H200", None, "excesssupply_H200-sxm5x8-NVLINK", "H200-SXM"),
    ("NVIDIA H200 NVL", None, None, "H200-NVL"),
    ("NVIDIA A10G", 24, None, "A10G"),
    ("RTX 4090", None, None, "RTX-4090"),
    ("NVIDIA GeForce RTX 4090", None, None, "RTX-4090"),
    ("RTX4000Ada", None, None, "RTX-4000-Ada"),
    ("NVIDIA RTX 4000 SFF Ada Generation", None, None, "RTX-4000-SFF-Ada"),
    ("Tesla V100", 32, None, "V100-32GB"),
    ("Tesla V100-PCIE-16GB", None, None, "V100-16GB"),
    ("V100-32G", None, None, "V100-32GB"),
    ("AMD Instinct MI300X OAM", None, None, "MI300X"),
    ("GH200_96GB", None, None, "GH200"),
    ("NVIDIA B200 Blackwell", 179, "SXM", "B200"),
])
def test_aliases_resolve(raw, mem, hint, expected):
    assert resolve(raw, memory_gb=mem, hint=hint).name == expected


def test_unknown_names_raise():
    for bad in ("unknown", "", "Voodoo 5 6000", "A999"):
        with pytest.raises(UnknownGpu):
            resolve(bad)


def test_every_canonical_model_has_vendor_memory_and_resolves_to_itself():
    for name, m in GPUS.items():
        assert m.vendor and m.memory_gb > 0
        assert resolve(name).name == name


def test_every_bundled_gpu_name_is_mapped():
    """Every GPU name in every bundled source resolves (the adapters' own hints aside)."""
    names: set[tuple[str, float | None]] = set()
    names |= {(r["gpu_type"], None) for r in _csv("gcp_price_changes.csv.gz")}
    names |= {(r["gpu"], None) for r in _csv("aws_instances.csv.gz")}
    names |= {(r["AcceleratorName"], None) for r in _csv("shadeform_vms.csv.gz")}
    names |= {(r["AcceleratorName"], float(r["GpuTotalMemoryMiB"]) / 1024 / float(r["AcceleratorCount"]))
              for r in _csv("skypilot_vast_vms.csv.gz")}
    names |= {(t["id"], t["memoryInGb"] or None) for t in _json("runpod_gputypes.json.gz")["data"]["gpuTypes"]
              if t["id"] != "unknown"}
    names |= {(t["displayName"], t["memoryInGb"] or None)
              for t in _json("runpod_gputypes.json.gz")["data"]["gpuTypes"] if t["id"] != "unknown"}
    for f in ("vast_bundles.json.gz", "vast_bundles_prev.json.gz"):
        for offers in _json(f)["offers_by_model"].values():
            names |= {(o["gpu_name"], o["gpu_ram"] / 1024) for o in offers}
    names |= {(r["gpu_type"], None) for r in _csv("primeintellect_by_provider.csv.gz")}
    unmapped = []
    for raw, mem in sorted(names, key=str):
        try:
            resolve(raw, memory_gb=mem)
        except UnknownGpu:
            unmapped.append(raw)
    assert not unmapped, f"unmapped GPU names: {unmapped}"
    assert len(names) > 60


def test_every_bundled_region_is_located():
    regions: set[str] = set()
    regions |= {r["region"] for r in _csv("gcp_price_changes.csv.gz")}
    regions |= {r["region"] for r in _csv("aws_instances.csv.gz")}
    regions |= {r["Region"] for r in _csv("shadeform_vms.csv.gz")}
    regions |= {r["Region"] for r in _csv("skypilot_vast_vms.csv.gz")}
    regions |= {i["armRegionName"] for i in _json("azure_retail_items.json.gz")}
    for f in ("vast_bundles.json.gz", "vast_bundles_prev.json.gz"):
        for offers in _json(f)["offers_by_model"].values():
            regions |= {o["geolocation"] for o in offers}
    unknown = []
    for r in sorted(regions):
        try:
            country, continent = locate(r)
            assert len(country) == 2 and continent in {"AF", "AS", "EU", "NA", "OC", "SA"}
        except UnknownRegion:
            unknown.append(r)
    assert not unknown, f"unlocated regions: {unknown}"
    assert len(regions) > 250


@pytest.mark.parametrize("region,expected", [
    ("eu-west-2", ("GB", "EU")), ("us-east-1-lim-1", ("PE", "SA")), ("ap-northeast-1-wl1-kix1", ("JP", "AS")),
    ("europe-west4", ("NL", "EU")), ("us-central1", ("US", "NA")), ("westeurope", ("NL", "EU")),
    ("kansascity-usa-2", ("US", "NA")), ("helsinki-finland-5", ("FI", "EU")), ("Czechia, CZ, EU", ("CZ", "EU")),
    ("Texas, US", ("US", "NA")), (", US", ("US", "NA")), ("global", (None, None)),
])
def test_regions(region, expected):
    assert locate(region) == expected


def test_unknown_region_raises():
    for bad in ("", "mars-north-1", "Atlantis, XX"):
        with pytest.raises(UnknownRegion):
            locate(bad)


def test_skypilot_vast_cross_check_agrees_with_vast_normalization():
    """SkyPilot's aggregation of Vast and our Vast adapter name the same models the same way."""
    ours = {o.gpu_type for o in registry.build("vastai").parse(registry.build("vastai").load_snapshot()).offers}
    theirs = {resolve(r["AcceleratorName"], memory_gb=float(r["GpuTotalMemoryMiB"]) / 1024 /
                      float(r["AcceleratorCount"])).name for r in _csv("skypilot_vast_vms.csv.gz")}
    assert theirs & ours, (theirs, ours)
    assert {"H100-SXM", "RTX-4090", "L40S"} <= ours
