"""The `gpubroker` command: up, down, status, migrate, services, and the feature commands registered below."""
from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from cluster.settings import Settings, SettingsError, load_settings

# Feature modules add sub-commands: each "module:function" gets the argparse sub-parsers object.
EXTENSIONS: list[str] = [
    "cluster.audit_cli:register",
    "cluster.operator_cli:register",
    "actors.cli:register",  # sync, replay
    "cluster.billing_cli:register",  # billing invoices, billing fx-rate
    "actors.forecast_cli:register",  # forecast train|eval|plot
    "gpubroker.cli:register",  # search, watch: client commands through the SDK (no server settings)
]
CLIENT_COMMANDS = {"search", "watch"}
# Steps `gpubroker up` runs after Serve is up (starting the gateway, loading the catalog, ...):
# each "module:function" is called with (settings, echo) and must be idempotent.
UP_STEPS: list[str] = [
    "actors.cli:up_step",  # bundled catalog, GCP history backfill, provider adapter actors
    "actors.ws_gateway:start_ws_gateway",
    "actors.booking_handles:up_step",  # booking hosts rebuild live bookings from PostgreSQL
    "actors.forecast_cli:up_step",  # forecast training schedule
]


def _echo(msg: str) -> None:
    print(msg, flush=True)


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _resolve(spec: str) -> Callable:
    mod, attr = spec.split(":")
    return getattr(importlib.import_module(mod), attr)


def _ray_address(settings: Settings) -> str:
    return settings.ray_address or f"127.0.0.1:{settings.ray_port}"


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


def start_ray_head(settings: Settings) -> bool:
    """Start a local Ray head unless one answers on the configured port. Returns True if started."""
    from cluster.ray_env import ray_env

    if settings.ray_address or _port_open("127.0.0.1", settings.ray_port):
        return False
    cmd = [_ray_bin(), "start", "--head", f"--port={settings.ray_port}", "--node-ip-address=127.0.0.1",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={settings.dashboard_port}", "--include-dashboard=true",
           "--disable-usage-stats"]
    if settings.ray_num_cpus:
        cmd.append(f"--num-cpus={settings.ray_num_cpus}")
    env = dict(os.environ, **ray_env(settings))
    _echo(f"starting Ray head on 127.0.0.1:{settings.ray_port}")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"ray start failed: {p.stderr.strip()[-800:]}")
    return True


def connect_ray(settings: Settings):
    from cluster.ray_env import ray_env

    # Before `import ray`: Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER at import, and with it unset it
    # rewrites 127.0.0.1 to the machine's other address.
    os.environ.update(ray_env(settings))
    import ray

    if not ray.is_initialized():
        ray.init(address=_ray_address(settings), namespace="gpubroker", log_to_driver=False,
                 logging_level="WARNING")
    return ray


def _wait_ready(settings: Settings, timeout: float = 120) -> dict:
    import httpx

    url = f"http://127.0.0.1:{settings.http_port}/ready"
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url, timeout=5)
            if r.status_code == 200:
                return r.json()
            last = r.text
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(1)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s: {last[:400]}")


def urls(settings: Settings) -> dict[str, str]:
    api = f"http://127.0.0.1:{settings.http_port}"
    return {
        "api": api + "/",
        "docs": api + "/docs",
        "openapi": api + "/openapi.json",
        "health": api + "/health",
        "ready": api + "/ready",
        "metrics": api + "/metrics",
        "ray_dashboard": f"http://127.0.0.1:{settings.dashboard_port}",
        "websocket": f"ws://{settings.ws_host}:{settings.ws_port}",
    }


def cmd_up(settings: Settings, args) -> int:
    from cluster.db import migrate
    from cluster.ray_env import deploy
    from cluster.services import ensure_services
    from gateway.metrics import metrics_env, reset_metrics_dir

    t0 = time.monotonic()
    for name, state in ensure_services(settings, start=True, echo=_echo).items():
        _echo(f"{name}: {state}")
    applied = asyncio.run(migrate(settings))
    _echo(f"migrations: {'applied ' + str(applied) if applied else 'up to date'}")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    started = start_ray_head(settings)
    if started:
        reset_metrics_dir(settings.state_dir)
    metrics_env(settings.state_dir)
    connect_ray(settings)
    _echo("deploying Serve application")
    deploy(settings)
    _wait_ready(settings)
    for step in UP_STEPS:
        _resolve(step)(settings, _echo)
    _echo(f"GPU Broker is up ({time.monotonic() - t0:.0f}s):")
    for k, v in urls(settings).items():
        _echo(f"  {k:14s} {v}")
    return 0


def _haproxy_pids(port: int) -> list[int]:
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    pids = set()
    for part in out.split("pid=")[1:]:
        pid = int(part.split(",", 1)[0])
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "haproxy" in cmdline:
            pids.add(pid)
    return sorted(pids)


def cmd_down(settings: Settings, args) -> int:
    if _port_open("127.0.0.1", settings.ray_port) and not settings.ray_address:
        try:
            connect_ray(settings)
            from ray import serve

            serve.shutdown()
            _echo("Serve stopped")
        except Exception as exc:  # still stop Ray below
            _echo(f"serve shutdown: {exc}")
        import ray

        ray.shutdown()
        subprocess.run([_ray_bin(), "stop", "--force"], capture_output=True)
        _echo("Ray stopped")
    else:
        _echo("Ray: not running")
    for pid in _haproxy_pids(settings.http_port):
        os.kill(pid, signal.SIGTERM)
        _echo(f"stopped Serve HAProxy (pid {pid})")
    return 0


def cmd_status(settings: Settings, args) -> int:
    import httpx

    from cluster.services import probe, services

    report: dict[str, object] = {}
    for svc in services(settings):
        err = asyncio.run(probe(svc))
        report[svc.name] = "up" if err is None else f"down: {err}"
    report["ray"] = "up" if _port_open("127.0.0.1", settings.ray_port) or settings.ray_address else "down"
    try:
        r = httpx.get(f"http://127.0.0.1:{settings.http_port}/ready", timeout=5)
        report["serve"] = "ready" if r.status_code == 200 else f"not ready ({r.status_code}): {r.text[:200]}"
    except httpx.HTTPError as exc:
        report["serve"] = f"down: {exc}"
    report["dashboard"] = "up" if _port_open("127.0.0.1", settings.dashboard_port) else "down"
    report["websocket"] = "up" if _port_open(settings.ws_host, settings.ws_port) else "down"
    if args.json:
        _echo(json.dumps(report, indent=2))
    else:
        for k, v in report.items():
            _echo(f"{k:10s} {v}")
    healthy = all(str(v).startswith(("up", "ready")) for k, v in report.items() if k not in ("websocket",))
    return 0 if healthy else 1


def cmd_migrate(settings: Settings, args) -> int:
    from cluster.db import migrate

    applied = asyncio.run(migrate(settings))
    _echo(f"applied {applied}" if applied else "schema up to date")
    return 0


def cmd_services(settings: Settings, args) -> int:
    from cluster.services import ensure_services

    for name, state in ensure_services(settings, start=not args.check_only, echo=_echo).items():
        _echo(f"{name}: {state}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from gpubroker import __version__

    parser = argparse.ArgumentParser(prog="gpubroker", description="GPU Broker: run the backend (up, down, status, "
                                     "...) and use the marketplace (search, watch)")
    parser.add_argument("--version", action="version", version=f"gpubroker {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start everything (idempotent) and print the URLs").set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop what `up` started").set_defaults(func=cmd_down)
    p = sub.add_parser("status", help="report each part")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_status)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    p = sub.add_parser("services", help="check (and start) PostgreSQL, Redis and NATS")
    p.add_argument("--check-only", action="store_true", help="report only; start nothing")
    p.set_defaults(func=cmd_services)
    for spec in EXTENSIONS:
        _resolve(spec)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in CLIENT_COMMANDS:  # talk to an API somewhere: the server's settings do not apply
        return int(args.func(args) or 0)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"gpubroker: {exc}", file=sys.stderr)
        return 2
    from cluster.logs import configure_logging
    from cluster.ray_env import ray_env

    os.environ.update(ray_env(settings))
    configure_logging(settings.log_level)
    try:
        return int(args.func(settings, args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from cluster.services import ServiceUnavailable

        prefix = "service unavailable" if isinstance(exc, ServiceUnavailable) else "error"
        print(f"gpubroker: {prefix}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
