"""Terraform snippets for a recommended offer, rendered per provider from templates.

AWS, GCP and Azure get their official providers' instance resources; marketplaces without an official
Terraform provider (RunPod, Vast.ai, the Shadeform clouds, Prime Intellect) get a `terraform_data`
record of the offer to provision through their API. Every value is escaped for HCL string literals; a
test parses every template's output with python-hcl2.
"""
from __future__ import annotations

import re
from string import Template
from typing import Any

_AWS = Template('''terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 5.0" }
  }
}

provider "aws" {
  region = $region
}

variable "ami_id" {
  description = "a GPU-ready AMI in this region (for example the AWS Deep Learning AMI)"
  type        = string
}

resource "aws_instance" "gpu" {
  ami           = var.ami_id
  instance_type = $instance_type
$market
  tags = {
    Name  = $name
    offer = $offer_id
  }
}
''')
_AWS_SPOT = '''  instance_market_options {
    market_type = "spot"
  }
'''
_GCP = Template('''terraform {
  required_providers {
    google = { source = "hashicorp/google", version = ">= 5.0" }
  }
}

variable "project" {
  type = string
}

resource "google_compute_instance" "gpu" {
  project      = var.project
  name         = "gpubroker-gpu"
  machine_type = $instance_type
  zone         = $zone

  boot_disk {
    initialize_params {
      image = "deeplearning-platform-release/common-cu123"
      size  = 200
    }
  }

  network_interface {
    network = "default"
  }

  scheduling {
    provisioning_model  = $model
    preemptible         = $preemptible
    automatic_restart   = false
    on_host_maintenance = "TERMINATE"
  }

  labels = {
    offer = $offer_label
  }
}
''')
_AZURE = Template('''terraform {
  required_providers {
    azurerm = { source = "hashicorp/azurerm", version = ">= 3.0" }
  }
}

provider "azurerm" {
  features {}
}

variable "resource_group_name" {
  type = string
}

variable "network_interface_id" {
  type = string
}

variable "ssh_public_key" {
  type = string
}

resource "azurerm_linux_virtual_machine" "gpu" {
  name                  = "gpubroker-gpu"
  resource_group_name   = var.resource_group_name
  location              = $region
  size                  = $instance_type
  priority              = $priority
$eviction
  admin_username        = "azureuser"
  network_interface_ids = [var.network_interface_id]

  admin_ssh_key {
    username   = "azureuser"
    public_key = var.ssh_public_key
  }

  os_disk {
    caching              = "ReadWrite"
    storage_account_type = "Premium_LRS"
  }

  source_image_reference {
    publisher = "microsoft-dsvm"
    offer     = "ubuntu-hpc"
    sku       = "2204"
    version   = "latest"
  }

  tags = {
    offer = $offer_id
  }
}
''')
_GENERIC = Template('''# $provider has no official Terraform provider: this records the offer to provision through its API
# (or a community provider); `terraform apply` stores it in state and creates nothing.
resource "terraform_data" "gpu_offer" {
  input = {
    provider       = $provider_str
    offer_id       = $offer_id
    instance       = $instance_type
    gpu_type       = $gpu_type
    gpu_count      = $gpu_count
    region         = $region
    pricing        = $pricing
    price_per_hour = $price
  }
}
''')


def hcl_string(value: Any) -> str:
    """A quoted HCL string literal: quotes and backslashes escaped, template sequences neutralized."""
    s = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + s.replace("${", "$${").replace("%{", "%%{") + '"'


def instance_type(offer: dict[str, Any]) -> str:
    """The provider's own instance name: the external id's first part, else the display name's first word."""
    ext = offer.get("external_id") or ""
    if ext:
        return ext.split(":", 1)[0]
    return (offer.get("name") or offer.get("gpu_type") or "gpu").split(" (", 1)[0].split()[0]


def terraform(offer: dict[str, Any]) -> str:
    """The snippet for one offer (a search item, or its detail with `external_id`)."""
    provider = str(offer["provider"])
    spot = offer.get("pricing") in ("spot", "interruptible")
    itype = instance_type(offer)
    region = str(offer.get("region") or "")
    common = {"region": hcl_string(region), "instance_type": hcl_string(itype), "offer_id": hcl_string(offer["id"]),
              "name": hcl_string(f"gpubroker {offer.get('gpu_type', '')}")}
    if provider == "aws":
        return _AWS.substitute(common, market=_AWS_SPOT if spot else "")
    if provider == "gcp":
        return _GCP.substitute(common, zone=hcl_string(f"{region}-a"),
                               model=hcl_string("SPOT" if spot else "STANDARD"), preemptible=str(spot).lower(),
                               offer_label=hcl_string(re.sub(r"[^a-z0-9_-]", "-", str(offer["id"]).lower())[:63]))
    if provider == "azure":
        size = itype if itype.startswith("Standard_") else f"Standard_{itype}"
        return _AZURE.substitute(common, instance_type=hcl_string(size), priority=hcl_string("Spot" if spot else "Regular"),
                                 eviction='  eviction_policy       = "Deallocate"' if spot else "")
    return _GENERIC.substitute(common, provider=re.sub(r"[^A-Za-z0-9 ._-]", "", provider),
                               provider_str=hcl_string(provider), gpu_type=hcl_string(offer.get("gpu_type", "")),
                               gpu_count=f"{float(offer.get('gpu_count') or 1):g}", pricing=hcl_string(offer.get("pricing", "")),
                               price=f"{float(offer.get('price_per_hour') or 0):.6g}")
