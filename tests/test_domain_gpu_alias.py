"""The user's gpu_type against the catalog's GPU names (domain.gpu_alias): aliases, folding, unknown names."""
from __future__ import annotations

from domain.gpu_alias import fold, resolve

CATALOG = ["A100-80GB-SXM", "A100-80GB-PCIe", "A100-40GB-SXM", "H100-SXM", "h100 pcie", "RTX 4090", "rtx_4090"]


def test_fold_drops_case_and_punctuation_only():
    assert fold("A100-80GB_sxm 4") == "a10080gbsxm4"
    assert fold("h100") == "h100"


def test_canonical_names_map_to_every_catalog_spelling():
    matched, unknown = resolve(["A100-80G"], CATALOG)
    assert unknown == []
    assert sorted(matched["A100-80G"]) == ["A100-80GB-PCIe", "A100-80GB-SXM"]


def test_catalog_names_match_ignoring_case_and_punctuation_once_each():
    matched, unknown = resolve(["rtx-4090", "RTX 4090"], CATALOG)
    assert unknown == []
    assert matched["rtx-4090"] == ["RTX 4090", "rtx_4090"]
    assert matched["RTX 4090"] == ["RTX 4090", "rtx_4090"]


def test_known_gpu_absent_from_the_catalog_is_a_valid_filter_matching_nothing():
    matched, unknown = resolve(["L40S"], CATALOG)
    assert matched == {"L40S": []} and unknown == []


def test_names_that_denote_no_gpu_are_reported_in_order():
    matched, unknown = resolve(["H100", "banana", "Z9"], CATALOG)
    assert matched == {"H100": ["H100-SXM", "h100 pcie"]}
    assert unknown == ["banana", "Z9"]
