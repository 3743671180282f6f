"""Terraform snippets (domain.iac): the exact values each provider's template receives, the instance name an
offer gives, and HCL string escaping."""
from __future__ import annotations

import hcl2
import pytest

from domain.iac import hcl_string, instance_type, terraform


def _lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines()}


def test_hcl_string_escapes_newlines_and_carriage_returns():
    assert hcl_string("a\nb\rc") == '"a\\nb\\rc"'
    assert hcl_string(None) == '"None"'


@pytest.mark.parametrize("offer, expected", [
    ({"external_id": "p5.48xlarge:us-east-1:x"}, "p5.48xlarge"),
    ({"external_id": "", "name": "H100 80GB (secure) pod", "gpu_type": "H100-SXM"}, "H100"),
    ({"name": "a2-highgpu-1g", "gpu_type": "A100-40GB-SXM"}, "a2-highgpu-1g"),
    ({"name": "", "gpu_type": "L40S"}, "L40S"),
    ({"external_id": None, "name": None, "gpu_type": None}, "gpu"),
    ({}, "gpu"),
])
def test_instance_type_is_the_external_ids_first_part_else_the_names_first_word(offer, expected):
    assert instance_type(offer) == expected


def test_aws_on_demand_snippet():
    text = terraform({"id": "o-1", "provider": "aws", "pricing": "on_demand", "external_id": "g5.xlarge:eu-west-1",
                      "region": "eu-west-1", "gpu_type": "A10G"})
    assert {'region = "eu-west-1"', 'instance_type = "g5.xlarge"', 'Name  = "gpubroker A10G"',
            'offer = "o-1"'} <= _lines(text)
    assert "instance_market_options" not in text


def test_aws_snippet_without_gpu_type_or_region():
    text = terraform({"id": "o-2", "provider": "aws", "region": None, "external_id": "p4d.24xlarge"})
    assert {'region = ""', 'Name  = "gpubroker "'} <= _lines(text)


@pytest.mark.parametrize("pricing, model, preemptible", [("spot", "SPOT", "true"), ("on_demand", "STANDARD", "false")])
def test_gcp_snippet(pricing, model, preemptible):
    oid = "Offer_ID:" + "x" * 80
    text = terraform({"id": oid, "provider": "gcp", "pricing": pricing, "external_id": "a2-highgpu-1g:us-central1",
                      "region": "us-central1", "gpu_type": "A100-40GB-SXM"})
    label = ("offer_id-" + "x" * 80)[:63]
    assert {'machine_type = "a2-highgpu-1g"', 'zone         = "us-central1-a"', f'provisioning_model  = "{model}"',
            f"preemptible         = {preemptible}", f'offer = "{label}"'} <= _lines(text)
    hcl2.loads(text)


@pytest.mark.parametrize("pricing, priority, eviction", [("interruptible", "Spot", True), ("on_demand", "Regular", False)])
def test_azure_snippet(pricing, priority, eviction):
    text = terraform({"id": "o-3", "provider": "azure", "pricing": pricing, "region": "germanywestcentral",
                      "external_id": "NC80adis_H100_v5:germanywestcentral", "gpu_type": "H100-NVL"})
    assert {'location              = "germanywestcentral"', 'size                  = "Standard_NC80adis_H100_v5"',
            f'priority              = "{priority}"'} <= _lines(text)
    assert ('eviction_policy       = "Deallocate"' in _lines(text)) is eviction
    body = hcl2.loads(text)["resource"][0]['"azurerm_linux_virtual_machine"']['"gpu"']
    assert ("eviction_policy" in body) is eviction


def test_azure_size_keeps_a_standard_prefix():
    text = terraform({"id": "o", "provider": "azure", "external_id": "Standard_ND96asr_v4", "region": "eastus"})
    assert 'size                  = "Standard_ND96asr_v4"' in _lines(text)


def test_generic_snippet_records_every_offer_field():
    text = terraform({"id": "o-4", "provider": "RunPod.io!", "pricing": "spot", "external_id": "NVIDIA H100:secure",
                      "region": "EU-RO-1", "gpu_type": "H100-SXM", "gpu_count": 8.0, "price_per_hour": 23.92})
    assert text.startswith("# RunPod.io has no official Terraform provider")
    assert {'provider       = "RunPod.io!"', 'offer_id       = "o-4"', 'instance       = "NVIDIA H100"',
            'gpu_type       = "H100-SXM"', "gpu_count      = 8", 'region         = "EU-RO-1"',
            'pricing        = "spot"', "price_per_hour = 23.92"} <= _lines(text)


def test_generic_snippet_defaults_for_missing_fields():
    text = terraform({"id": "o-5", "provider": "vastai"})
    assert {'gpu_type       = ""', "gpu_count      = 1", 'region         = ""', 'pricing        = ""',
            "price_per_hour = 0", 'instance       = "gpu"'} <= _lines(text)
