"""The Serve configuration in `cluster/deploy/serve.yaml`: read, validated with Serve's own schema, and with
this instance's settings applied where they override the file (the list is at the top of the file).

The same file is what `serve deploy` takes, KubeRay's `serveConfigV2`, and what `gpubroker up` deploys.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from ray.serve.schema import ServeDeploySchema

from cluster.ray_env import metrics_env
from cluster.settings import Settings

SERVE_CONFIG = Path(__file__).resolve().parent / "deploy" / "serve.yaml"
# Settings that never go into a Serve config: Serve keeps the config in its checkpoint and shows it in the
# dashboard and `serve status`. Replicas read them from their environment or Vault.
SECRET_SETTINGS = frozenset({"vault_token", "chat_openai_api_key"})
# setting -> (deployment, autoscaling_config key)
REPLICA_SETTINGS = {
    f"{part}_replicas_{end}": (part.capitalize(), f"{end}_replicas")
    for part in ("ingress", "search", "forecast", "chat") for end in ("min", "max")
}


def read_serve_config(path: Path = SERVE_CONFIG) -> dict[str, Any]:
    """The file as written; raises pydantic's ValidationError when Serve would refuse it."""
    raw = yaml.safe_load(path.read_text())
    ServeDeploySchema.model_validate(raw)
    return raw


def settings_args(settings: Settings) -> dict[str, Any]:
    """The builder's `args.settings`: every setting but the secrets, as JSON values."""
    return settings.model_dump(mode="json", exclude=set(SECRET_SETTINGS))


def serve_config(settings: Settings, path: Path = SERVE_CONFIG) -> dict[str, Any]:
    """The file with the settings that override it applied; validated again."""
    config = copy.deepcopy(read_serve_config(path))
    config["http_options"].update(host=settings.http_host, port=settings.http_port)
    (app,) = config["applications"]
    app["args"] = {**app.get("args", {}), "settings": settings_args(settings)}
    runtime_env = app.setdefault("runtime_env", {})
    runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **metrics_env(settings.state_dir)}
    deployments = {d["name"]: d for d in app["deployments"]}
    for setting, (name, key) in REPLICA_SETTINGS.items():
        value = getattr(settings, setting)
        if value is not None:
            deployments[name]["autoscaling_config"][key] = value
    if settings.max_ongoing_requests is not None:
        for d in deployments.values():
            d["max_ongoing_requests"] = settings.max_ongoing_requests
            d["autoscaling_config"]["target_ongoing_requests"] = max(8, settings.max_ongoing_requests // 4)
    ServeDeploySchema.model_validate(config)
    return config


def deployment_options(app: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Deployment name -> the keyword arguments of `serve.deployment` that the config sets, with the
    application's runtime_env merged in as Serve does for a deployed config (a deployment's env_vars win)."""
    app_env = app.get("runtime_env") or {}
    options = {}
    for d in app["deployments"]:
        opts = {k: copy.deepcopy(v) for k, v in d.items() if k != "name"}
        actor = opts.setdefault("ray_actor_options", {})
        own_env = actor.get("runtime_env") or {}
        env = {**app_env, **own_env}
        if app_env.get("env_vars") or own_env.get("env_vars"):
            env["env_vars"] = {**app_env.get("env_vars", {}), **own_env.get("env_vars", {})}
        if env:
            actor["runtime_env"] = env
        options[d["name"]] = opts
    return options
