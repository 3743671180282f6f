"""The GPU engine: vLLM behind Ray Serve LLM (`ray.serve.llm`), an OpenAI-compatible app on its own route.

`import ray.serve.llm` fails without vLLM, so this is the only module that imports it, and only inside
`build_llm_app`. `llm_config()` is a plain dict (what `LLMConfig` takes), so it is built and checked
without vLLM. The GPU is asked for by the LLM server deployment that `build_openai_app` creates
(`accelerator_type`, one GPU per replica); the Chat deployment stays CPU-only and talks to the route with
the `openai` engine (`openai_base_url`).
"""
from __future__ import annotations

from typing import Any

from cluster.settings import Settings

LLM_APP_NAME = "gpubroker-llm"
LLM_ROUTE = "/llm"


def llm_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of `ray.serve.llm.LLMConfig` for the configured model."""
    cfg: dict[str, Any] = {
        "model_loading_config": {"model_id": settings.chat_openai_model, "model_source": settings.chat_vllm_model},
        "deployment_config": {"autoscaling_config": {"min_replicas": settings.chat_vllm_replicas_min,
                                                     "max_replicas": settings.chat_vllm_replicas_max,
                                                     "target_ongoing_requests": 16}},
        # Short prompts and answers: a small context leaves the GPU memory to the KV cache of many requests.
        "engine_kwargs": {"max_model_len": settings.chat_vllm_max_model_len, "enforce_eager": False,
                          "gpu_memory_utilization": settings.chat_vllm_gpu_memory_utilization},
        "log_engine_metrics": True,
    }
    if settings.chat_vllm_accelerator:
        cfg["accelerator_type"] = settings.chat_vllm_accelerator
    return cfg


def build_llm_app(settings: Settings):
    """The Serve application of the vLLM OpenAI server (needs the `llm` extra and a GPU)."""
    from ray.serve.llm import LLMConfig, build_openai_app

    return build_openai_app({"llm_configs": [LLMConfig(**llm_config(settings))]})


def deploy_llm_app(settings: Settings) -> None:
    """Deploy the vLLM app beside the main application (`gpubroker up` with chat_engine=vllm)."""
    from ray import serve

    serve.run(build_llm_app(settings), name=LLM_APP_NAME, route_prefix=LLM_ROUTE, blocking=False)


def openai_base_url(settings: Settings) -> str:
    """Where the Chat deployment reaches the vLLM app: the configured URL, else our own Serve HTTP port."""
    return settings.chat_openai_url or f"http://{settings.http_host}:{settings.http_port}{LLM_ROUTE}/v1"
