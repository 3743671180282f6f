"""Chat rules without the cluster: search queries, ranking, relaxing, follow-ups, Terraform (parsed with
python-hcl2), the vLLM config (checked against Ray Serve LLM's own model, no vLLM needed), the WS message."""
from __future__ import annotations

import sys
import uuid

import hcl2
import pytest

from cluster.settings import SettingsError, load_settings
from domain import chat_plan as plan
from domain.chat import ChatConstraints, ChatRequest
from domain.iac import hcl_string, terraform
from domain.offer_index import OfferIndex
from domain.search import parse_query
from gateway.ws.protocol import ChatMsg, ProtocolError, parse_client_message


def _item(price: float, provider: str = "aws", oid: str | None = None, **kw) -> dict:
    return {"id": oid or str(uuid.uuid4()), "provider": provider, "gpu_type": kw.get("gpu_type", "H100-SXM"),
            "gpu_count": kw.get("gpu_count", 8.0), "region": kw.get("region", "us-east-1"),
            "pricing": kw.get("pricing", "on_demand"), "price_per_hour": price, "last_updated": "2026-11-30T10:00:00Z"}


def test_queries_are_valid_search_queries_and_places_are_ored():
    c = ChatConstraints(gpu_type="H100", gpu_count=8, countries=["DE"], continents=["NA"], regions=["us-east", "eu-west-1"],
                        pricing="spot", max_price_per_hour=30, max_total=1000, duration_hours=50)
    queries = plan.search_queries(c)
    assert [prefix for _, prefix in queries] == [None, "us-east", None, None]
    parsed = [parse_query(q) for q, _ in queries]
    assert [(p.region, p.country, p.continent) for p in parsed] == [
        (["eu-west-1"], [], []), ([], ["US"], []), ([], ["DE"], []), ([], [], ["NA"])]
    for p in parsed:
        assert p.gpu_type == ["H100-SXM", "H100-PCIe", "H100-NVL"]
        assert (p.min_gpu_count, p.max_price, [x.value for x in p.pricing]) == (8, 20.0, ["spot", "interruptible"])


def test_nvlink_keeps_only_sxm_and_nvl_boards():
    assert plan.gpu_names(ChatConstraints(gpu_type="H100", interconnect="nvlink")) == ["H100-SXM", "H100-NVL"]
    assert plan.gpu_names(ChatConstraints(gpu_type="L4", interconnect="nvlink")) == []
    assert "no NVLink" in plan.follow_up(ChatConstraints(gpu_type="L4", interconnect="nvlink"), [])


def test_rank_by_total_cost_with_stale_flag_and_ties_by_id():
    c = ChatConstraints(gpu_type="H100", duration_hours=10)
    items = [_item(3.0, oid="b"), _item(2.0, "vastai", oid="c"), _item(3.0, oid="a"), _item(9.0, oid="d")]
    recs = plan.rank(items + items[:1], c, {"vastai"}, 3)
    assert [(r.offer_id, r.total_for_duration, r.stale) for r in recs] == [("c", 20.0, True), ("a", 30.0, False),
                                                                          ("b", 30.0, False)]
    assert "stale" in recs[0].reason and "20.00 USD for 10 h" in recs[0].reason


def test_stale_providers_read_from_the_index_warnings():
    row = ["id-1", "p1", "x", "n", "H100-SXM", 1.0, 80.0, 8.0, 64.0, None, 2.0, 2.0, "USD", "on_demand",
           "us-east-1", "US", "NA", "up", [], [], 0, 0]
    index = OfferIndex([row])
    index.stale = {"p1": "last synced long ago"}
    assert plan.stale_providers(index._stale_warnings(None)) == {"p1"}


def test_relaxations_go_from_place_to_price_to_pricing():
    c = ChatConstraints(gpu_type="H100", regions=["us-east-1"], max_price_per_hour=1, pricing="on_demand", gpu_count=8)
    got = [(name, relaxed.set_fields()) for name, _, relaxed in plan.relaxations(c)]
    assert [n for n, _ in got] == ["regions", "max_price_per_hour", "pricing", "gpu_count"]
    assert got[0][1] == {"gpu_type": "H100", "gpu_count": 8, "pricing": "on_demand", "max_price_per_hour": 1.0}
    assert "pricing" not in got[2][1]


def test_follow_up_when_vague_or_contradictory_and_none_otherwise():
    assert "Which GPU" in plan.follow_up(ChatConstraints(duration_hours=5), [])
    assert "at most 16 GB" in plan.follow_up(ChatConstraints(gpu_type="T4", min_gpu_memory_gb=80), [])
    assert "several GPU types" in plan.follow_up(ChatConstraints(gpu_type="H100"), ["several GPU types: H100, A100"])
    assert plan.follow_up(ChatConstraints(use_case="inference"), []) is None


def test_hourly_limit_is_the_tighter_of_rate_and_total_over_duration():
    assert plan.hourly_limit(ChatConstraints(max_price_per_hour=5, max_total=100, duration_hours=40)) == 2.5
    assert plan.hourly_limit(ChatConstraints(max_total=100)) is None


@pytest.mark.parametrize("provider,pricing,external_id,resource", [
    ("aws", "spot", "p5.48xlarge:us-east-1", "aws_instance"),
    ("aws", "on_demand", "g5.xlarge:eu-west-1", "aws_instance"),
    ("gcp", "spot", "a2-highgpu-1g:us-central1", "google_compute_instance"),
    ("azure", "interruptible", "Standard_NC80adis_H100_v5:germanywestcentral:linux:interruptible",
     "azurerm_linux_virtual_machine"),
    ("runpod", "on_demand", "NVIDIA H100 80GB HBM3:secure", "terraform_data"),
    ("vastai", "interruptible", "31500043", "terraform_data"),
    ("lambdalabs", "on_demand", "lambdalabs_H100:saltlakecity-usa-1", "terraform_data"),
])
def test_terraform_parses_as_hcl_for_every_provider(provider, pricing, external_id, resource):
    offer = {"id": 'e1"${evil}', "provider": provider, "pricing": pricing, "external_id": external_id,
             "region": "us-central1", "gpu_type": "H100-SXM", "gpu_count": 8.0, "price_per_hour": 98.32}
    doc = hcl2.loads(terraform(offer))
    body = next(iter(doc["resource"][0][f'"{resource}"'].values()))
    text = repr(body)
    assert "${evil}" not in text.replace("$${evil}", "")  # no interpolation smuggled in
    if resource == "aws_instance":
        assert body["instance_type"] == f'"{external_id.split(":")[0]}"'
        assert ("instance_market_options" in body) == (pricing == "spot")
    if resource == "google_compute_instance":
        assert body["scheduling"][0]["provisioning_model"] == '"SPOT"'
    if resource == "azurerm_linux_virtual_machine":
        assert body["size"] == '"Standard_NC80adis_H100_v5"' and body["priority"] == '"Spot"'
    if resource == "terraform_data":
        assert body["input"]["gpu_count"] == 8


def test_hcl_string_escapes_quotes_and_templates():
    assert hcl_string('a"b${c}%{d}\\') == '"a\\"b$${c}%%{d}\\\\"'


def test_vllm_config_is_a_valid_ray_serve_llm_config_without_importing_vllm():
    from ray.llm._internal.serve.core.configs.llm_config import LLMConfig

    from deployments.llm_vllm import llm_config, openai_base_url

    s = load_settings(chat_engine="vllm", chat_vllm_accelerator="H100", chat_vllm_replicas_max=2)
    cfg = LLMConfig(**llm_config(s))
    assert cfg.accelerator_type == "H100" and cfg.model_id == "gpubroker-chat"
    assert cfg.deployment_config["autoscaling_config"]["max_replicas"] == 2
    assert openai_base_url(s) == f"http://127.0.0.1:{s.http_port}/llm/v1"
    assert "vllm" not in sys.modules and "ray.serve.llm" not in sys.modules


def test_chat_settings_are_validated():
    with pytest.raises(SettingsError, match="GPUBROKER_CHAT_ENGINE"):
        load_settings({"GPUBROKER_CHAT_ENGINE": "gpt"})
    assert load_settings({"GPUBROKER_CHAT_FX_USD": '{"EUR": 1.2}'}).chat_fx_usd == {"EUR": 1.2}


def test_ws_chat_message_validates_like_the_http_body():
    msg = parse_client_message('{"type": "chat", "id": "q1", "prompt": "8x H100", "constraints": {"gpu_count": 4}}')
    assert isinstance(msg, ChatMsg) and msg.id == "q1" and msg.constraints.gpu_count == 4
    for raw, field in [('{"type": "chat", "prompt": "  "}', "prompt"), ('{"type": "chat"}', "prompt"),
                       ('{"type": "chat", "prompt": "%s"}' % ("x" * 4001), "prompt"),
                       ('{"type": "chat", "prompt": "a", "constraints": {"gpu_type": "Z80"}}', "constraints.gpu_type")]:
        with pytest.raises(ProtocolError) as exc:
            parse_client_message(raw)
        assert exc.value.code == "invalid" and exc.value.details[0]["field"] == field


def test_request_model_limits():
    assert ChatRequest(prompt="x" * 4000).prompt
    with pytest.raises(ValueError):
        ChatRequest(prompt="x" * 4001)
    with pytest.raises(ValueError, match="unknown continent"):
        ChatConstraints(continents=["XX"])
