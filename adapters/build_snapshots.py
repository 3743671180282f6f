"""Build the bundled snapshots in adapters/snapshots/ from the recorded data in ../shared/data.

    python -m adapters.build_snapshots [--data ../shared/data]

Every file is copied or derived here, never edited by hand; the output is committed so that a fresh
checkout (and `gpubroker up`) needs nothing outside the project. Recorded responses keep their API shape.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "snapshots"

# (output name, source path relative to the data dir, note)
FILES = [
    ("gcp_catalog.csv.gz", "gcp_pricing_history_cyclenerd/gcp_gpu_catalog_2026-01-31.csv", "GCP catalog 2026-01-29"),
    ("gcp_price_changes.csv.gz", "gcp_pricing_history_cyclenerd/gcp_gpu_price_changes.csv",
     "GCP change log 2022-02..2026-01 (history backfill)"),
    ("aws_instances.csv.gz", "aws_gpu_instances_vantage/aws_gpu_instances_ondemand_by_region.csv", "AWS 2026-01-21"),
    ("azure_retail_items.json.gz", "azure_retail_prices_fixture/azure_retail_prices_gpu_items.json",
     "Azure Retail Prices API Items"),
    ("runpod_gputypes.json.gz", "runpod_gputypes_fixture/runpod_gputypes_response.json", "RunPod GraphQL gpuTypes"),
    ("vast_bundles.json.gz", "vast_raw_offers_ccir/vast_bundles_2026-03-06.json", "Vast.ai bundles 2026-03-06"),
    ("vast_bundles_prev.json.gz", "vast_raw_offers_ccir/vast_bundles_2026-03-05.json", "Vast.ai bundles 2026-03-05"),
    ("shadeform_vms.csv.gz", "skypilot_catalog_shadeform/shadeform_vms.csv", "SkyPilot Shadeform catalog"),
    ("skypilot_vast_vms.csv.gz", "skypilot_catalog_vast/vast_vms.csv", "SkyPilot Vast catalog (cross-check)"),
    ("primeintellect_by_provider.csv.gz", "primeintellect_marketplace_tugot17/by_provider.csv",
     "Prime Intellect 28-day series (replay)"),
]


def build(data: Path) -> dict:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for name, rel, note in FILES:
        raw = (data / rel).read_bytes()
        # mtime=0: the same input gives byte-identical output, so re-running leaves git clean
        (OUT / name).write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
        manifest[name] = {"source": rel, "note": note, "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
        prov = data / rel.split("/")[0] / "PROVENANCE.txt"
        if prov.exists():
            manifest[name]["provenance"] = prov.read_text().splitlines()[0]
    (OUT / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = ap.parse_args()
    m = build(args.data)
    total = sum((OUT / n).stat().st_size for n in m)
    print(f"wrote {len(m)} snapshots to {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
