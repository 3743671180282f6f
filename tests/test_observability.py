"""The Grafana dashboard and the Prometheus alert rules under cluster/observability/ only name metrics
that exist, with the suffix their type gives them (a histogram's `_bucket`, a counter's `_total`)."""
from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

OBS = Path(__file__).resolve().parent.parent / "cluster" / "observability"
METRIC_MODULES = ("gateway.http.metrics", "gateway.ws.metrics", "actors.metrics", "deployments.search_metrics")  # every module declaring gpubroker_* metrics
NAME = re.compile(r"\b(gpubroker_[a-z0-9_]+)\b")


def _alert_exprs() -> dict[str, str]:
    rules = yaml.safe_load((OBS / "alerts.yaml").read_text())
    return {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}


def _dashboard_exprs() -> dict[str, str]:
    dash = json.loads((OBS / "grafana-dashboard.json").read_text())
    return {f"{p['title']} [{t['refId']}]": t["expr"] for p in dash["panels"] for t in p["targets"]}


def _sample_names(families) -> set[str]:
    """Every series name a family exposes in the text format (counter `_total`, histogram `_bucket` ...)."""
    names = set()
    for fam in families:
        names.add(fam.name)
        for s in fam.samples:
            names.add(s.name)
        if fam.type == "histogram":
            names |= {fam.name + suffix for suffix in ("_bucket", "_sum", "_count")}
        if fam.type == "counter":
            names.add(fam.name + "_total")
    return names


def _declared_names() -> set[str]:
    for mod in METRIC_MODULES:
        importlib.import_module(mod)
    return _sample_names(f for f in REGISTRY.collect() if f.name.startswith("gpubroker_"))


def test_alert_rules_are_well_formed():
    rules = yaml.safe_load((OBS / "alerts.yaml").read_text())
    seen = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["alert"] not in seen
            seen.add(rule["alert"])
            assert rule["labels"]["severity"] in ("page", "ticket")
            assert rule["annotations"]["summary"]
            assert rule["expr"].count("(") == rule["expr"].count(")")
    # the SLOs the operators asked for: latency, errors, staleness, outbox and stream lag
    joined = " ".join(_alert_exprs().values())
    for name in ("gpubroker_http_request_duration_seconds_bucket", "gpubroker_http_requests_total",
                 "gpubroker_ingest_last_sync_timestamp_seconds", "gpubroker_outbox_oldest_unpublished_age_seconds",
                 "gpubroker_ws_ingest_lag_seconds_bucket"):
        assert name in joined


def test_dashboard_is_importable_grafana_json():
    dash = json.loads((OBS / "grafana-dashboard.json").read_text())
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 30
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and len(ids) >= 10
    for p in dash["panels"]:
        assert p["targets"] and all(t["expr"].count("(") == t["expr"].count(")") for t in p["targets"])


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_name_is_declared_by_our_code(source):
    exprs = _alert_exprs() if source == "alerts" else _dashboard_exprs()
    declared = _declared_names()
    unknown = {where: sorted(set(NAME.findall(e)) - declared) for where, e in exprs.items()}
    assert {k: v for k, v in unknown.items() if v} == {}


async def test_http_metric_names_match_what_metrics_exposes(http):
    """The families the running app exposes after traffic carry the names the expressions use."""
    for path in ("/health", "/providers?gpu_type=H100", "/no-such-route"):
        await http.get(path)
    live = _sample_names(text_string_to_metric_families((await http.get("/metrics")).text))
    used = {n for e in list(_alert_exprs().values()) + list(_dashboard_exprs().values()) for n in NAME.findall(e)}
    http_used = {n for n in used if n.startswith("gpubroker_http_")}
    assert http_used and http_used <= live, sorted(http_used - live)
