"""The cluster files are what `ray up` accepts: Ray's own preparation and schema validation, plus the
rules that keep secrets and the dashboard off the network."""
from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

DEPLOY = Path(__file__).resolve().parent.parent / "cluster" / "deploy"
CLUSTER_FILES = sorted(DEPLOY.glob("ray-cluster-*.yaml"))


def _commands(cfg: dict) -> list[str]:
    keys = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
            "head_start_ray_commands", "worker_start_ray_commands")
    return [c for k in keys for c in cfg.get(k) or []]


def test_both_variants_exist():
    assert [p.name for p in CLUSTER_FILES] == ["ray-cluster-aws.yaml", "ray-cluster-onprem.yaml"]


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_ray_accepts_the_cluster_file(path):
    raw = yaml.safe_load(path.read_text())
    prepared = prepare_config(copy.deepcopy(raw))
    validate_config(prepared)  # raises on any schema error
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_aws_has_head_cpu_and_gpu_node_types():
    cfg = prepare_config(yaml.safe_load((DEPLOY / "ray-cluster-aws.yaml").read_text()))
    types = cfg["available_node_types"]
    assert set(types) == {"head", "cpu_worker", "gpu_worker"}
    assert types["head"]["resources"].get("gpubroker_head") == 1  # places the WebSocket gateway
    assert types["head"]["resources"].get("CPU") == 0
    assert types["gpu_worker"]["node_config"]["InstanceType"].startswith(("g", "p"))


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_only_the_wheel_and_node_script_are_copied(path):
    mounts = yaml.safe_load(path.read_text())["file_mounts"]
    assert sorted(mounts.values()) == ["./cluster/deploy/node", "./dist"]
    for local in mounts.values():
        assert local not in (".", "./") and ".venv" not in local and ".run" not in local


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_start_commands_bind_the_dashboard_privately_and_use_the_venv(path):
    cfg = yaml.safe_load(path.read_text())
    head = " ".join(cfg["head_start_ray_commands"])
    assert '--dashboard-host="$GPUBROKER_NODE_IP"' in head and "0.0.0.0" not in head
    for cmd in _commands(cfg):
        assert " ray " not in f" {cmd} ".replace("/bin/ray ", "/bin/RAY "), f"bare ray in {cmd!r}"
        assert "GPUBROKER_SECRET_" not in cmd  # secrets come from Vault on the node
    for cmd in cfg["head_start_ray_commands"][1:] + cfg["worker_start_ray_commands"][1:]:
        assert cmd.startswith(". /opt/gpubroker/node/env.sh && ")


def test_node_env_script_is_valid_shell_and_turns_ray_auth_on():
    script = DEPLOY / "node" / "env.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "RAY_AUTH_MODE=token" in text
    for var in ("GPUBROKER_DATABASE_URL", "GPUBROKER_REDIS_URL", "GPUBROKER_NATS_URL", "GPUBROKER_VAULT_TOKEN"):
        assert f"{var}=" in text


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_every_node_starts_its_metrics_exporter(path):
    """One scrape target per node: head and workers start cluster.node_metrics on their private address."""
    cfg = yaml.safe_load(path.read_text())
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        [cmd] = [c for c in cfg[key] if "cluster.node_metrics" in c]
        assert '--host "$GPUBROKER_NODE_IP" --port 9108' in cmd and "/gpubroker-venv/bin/python -m" in cmd
        subprocess.run(["bash", "-n", "-c", cmd], check=True)
