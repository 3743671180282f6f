"""The composition root: the Serve application graph (ingress, search, forecast, chat) and its deployment.

`build_app` is Serve's application builder named by `cluster/deploy/serve.yaml` (`import_path:
deployments.app:build_app`), so `serve deploy` on a cluster builds the same graph as `gpubroker up`. The
deployments' options (autoscaling, max_ongoing_requests, resources) come from that file, never from code.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from ray import serve
from ray.serve import Application

from cluster.serve_config import deployment_options, serve_config
from cluster.settings import Settings, load_settings
from deployments.chat import Chat
from deployments.forecast import Forecast
from deployments.ingress import Ingress
from deployments.llm_vllm import deploy_llm_app
from deployments.search import Search

# What the ingress composes; an application of the ingress alone answers everything but search through a
# handle, forecasts and chat.
PARTS = ("search", "forecast", "chat")


def compose(settings: Settings, options: Mapping[str, Mapping[str, Any]] | None = None,
            parts: Iterable[str] = PARTS) -> Application:
    """The application graph; `options` maps a deployment name to its `serve.deployment` options."""
    options = options or {}
    parts = set(parts)
    unknown = parts - set(PARTS)
    if unknown:
        raise ValueError(f"unknown application parts {sorted(unknown)}; known: {', '.join(PARTS)}")

    def deployment(cls, name: str):
        return serve.deployment(cls, name=name, **options.get(name, {}))

    handles: dict[str, Application] = {}
    if "search" in parts:
        handles["search"] = deployment(Search, "Search").bind(settings)
    if "forecast" in parts:
        handles["forecast"] = deployment(Forecast, "Forecast").bind(settings)
    if "chat" in parts:
        handles["chat"] = deployment(Chat, "Chat").bind(settings, handles.get("search"), handles.get("forecast"))
    return deployment(Ingress, "Ingress").bind(settings, handles)


def build_app(args: dict[str, Any]) -> Application:
    """Serve's application builder. `args.settings`: settings on top of the GPUBROKER_* environment of the
    process Serve builds in; `args.parts`: what the ingress composes (default all). Serve applies the
    deployments' options from the config it deploys."""
    settings = load_settings(**(args.get("settings") or {}))
    return compose(settings, parts=args.get("parts", PARTS))


def deploy(settings: Settings, name: str | None = None, route_prefix: str | None = None,
           parts: Iterable[str] = PARTS) -> None:
    """Deploy the application of `cluster/deploy/serve.yaml` (with the settings that override it) from this
    process: start Serve's HTTP proxy on the configured address if needed, build the graph with the file's
    deployment options and run it under `name` and `route_prefix` (default: the file's)."""
    config = serve_config(settings)
    (app,) = config["applications"]
    serve.start(proxy_location=config["proxy_location"], http_options=config["http_options"])
    graph = compose(settings, deployment_options(app), parts)
    serve.run(graph, name=name or app["name"], route_prefix=route_prefix or app["route_prefix"], blocking=False)
    if name is None and settings.chat_engine == "vllm":  # the GPU LLM app, on its own route
        deploy_llm_app(settings)
