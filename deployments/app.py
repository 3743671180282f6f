"""The composition root: the Serve application graph (ingress, search, forecast, chat) and its deployment."""
from __future__ import annotations

from typing import Any

from ray import serve

from cluster.ray_env import actor_runtime_env
from cluster.settings import Settings
from deployments.chat import Chat
from deployments.forecast import Forecast
from deployments.ingress import Ingress
from deployments.llm_vllm import deploy_llm_app
from deployments.search import Search


def deployment_options(settings: Settings, name: str, min_replicas: int, max_replicas: int) -> dict[str, Any]:
    """Options every deployment of ours shares: autoscaling bounds, a raised max_ongoing_requests
    (Serve's default of 5 collapses throughput), num_cpus=0, the shared metrics directory, and no
    per-request access-log line (it costs CPU on the hot path; EdgeMiddleware logs errors)."""
    return {
        "name": name,
        "max_ongoing_requests": settings.max_ongoing_requests,
        "autoscaling_config": {
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            "target_ongoing_requests": max(8, settings.max_ongoing_requests // 4),
            "upscale_delay_s": 10,
            "downscale_delay_s": 120,
        },
        "ray_actor_options": {"num_cpus": 0, "runtime_env": actor_runtime_env(settings)},
        "health_check_period_s": 10,
        "graceful_shutdown_timeout_s": 5,
        "logging_config": {"enable_access_log": False},
    }


def build_app(settings: Settings):
    """The Serve application: the ingress and what it composes."""
    def deployment(cls, name: str, lo: int, hi: int):
        return serve.deployment(cls, **deployment_options(settings, name, lo, hi))

    search = deployment(Search, "Search", settings.search_replicas_min, settings.search_replicas_max).bind(settings)
    forecast = deployment(Forecast, "Forecast", settings.forecast_replicas_min,
                          settings.forecast_replicas_max).bind(settings)
    chat = deployment(Chat, "Chat", settings.chat_replicas_min, settings.chat_replicas_max).bind(settings, search,
                                                                                                  forecast)
    ingress = deployment(Ingress, "Ingress", settings.ingress_replicas_min, settings.ingress_replicas_max)
    return ingress.bind(settings, {"search": search, "forecast": forecast, "chat": chat})


def deploy(settings: Settings, name: str = "gpubroker", route_prefix: str = "/", app=None) -> None:
    """Start Serve's HTTP proxy on the configured address (if needed) and deploy the application."""
    serve.start(http_options={"host": settings.http_host, "port": settings.http_port}, detached=True)
    serve.run(app if app is not None else build_app(settings), name=name, route_prefix=route_prefix, blocking=False)
    if app is None and settings.chat_engine == "vllm":  # the GPU LLM app, on its own route
        deploy_llm_app(settings)
