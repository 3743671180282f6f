"""Running the system on this machine: start or reach the Ray head, wait for Serve, and the `down`,
`status`, `migrate` and `services` commands. The `gpubroker` command itself (with `up`, which deploys the
application) is composed in `deployments/cli.py`."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cluster.ray_env import ray_env
from cluster.settings import Settings

# cluster.services and cluster.db are imported by the commands that use them: the Redis, NATS and
# PostgreSQL clients add about 1 s to every start of `gpubroker`, and the client commands need none of them.


def echo(msg: str) -> None:
    print(msg, flush=True)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _ray_address(settings: Settings) -> str:
    return settings.ray_address or f"127.0.0.1:{settings.ray_port}"


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


def start_ray_head(settings: Settings) -> bool:
    """Start a local Ray head unless one answers on the configured port. Returns True if started."""
    if settings.ray_address or port_open("127.0.0.1", settings.ray_port):
        return False
    cmd = [_ray_bin(), "start", "--head", f"--port={settings.ray_port}", "--node-ip-address=127.0.0.1",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={settings.dashboard_port}", "--include-dashboard=true",
           "--disable-usage-stats"]
    if settings.ray_num_cpus:
        cmd.append(f"--num-cpus={settings.ray_num_cpus}")
    env = dict(os.environ, **ray_env(settings))
    echo(f"starting Ray head on 127.0.0.1:{settings.ray_port}")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"ray start failed: {p.stderr.strip()[-800:]}")
    return True


def connect_ray(settings: Settings):
    # Before `import ray`: Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER at import, and with it unset it
    # rewrites 127.0.0.1 to the machine's other address.
    os.environ.update(ray_env(settings))
    import ray

    if not ray.is_initialized():
        ray.init(address=_ray_address(settings), namespace="gpubroker", log_to_driver=False,
                 logging_level="WARNING")
    return ray


def wait_ready(settings: Settings, timeout: float = 120) -> dict:
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


def haproxy_pids(port: int) -> list[int]:
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
    if port_open("127.0.0.1", settings.ray_port) and not settings.ray_address:
        try:
            connect_ray(settings)
            from ray import serve

            serve.shutdown()
            echo("Serve stopped")
        except Exception as exc:  # still stop Ray below
            echo(f"serve shutdown: {exc}")
        import ray

        ray.shutdown()
        subprocess.run([_ray_bin(), "stop", "--force"], capture_output=True)
        echo("Ray stopped")
    else:
        echo("Ray: not running")
    for pid in haproxy_pids(settings.http_port):
        os.kill(pid, signal.SIGTERM)
        echo(f"stopped Serve HAProxy (pid {pid})")
    return 0


def cmd_status(settings: Settings, args) -> int:
    from cluster.services import probe, services

    report: dict[str, object] = {}
    for svc in services(settings):
        err = asyncio.run(probe(svc))
        report[svc.name] = "up" if err is None else f"down: {err}"
    report["ray"] = "up" if port_open("127.0.0.1", settings.ray_port) or settings.ray_address else "down"
    try:
        r = httpx.get(f"http://127.0.0.1:{settings.http_port}/ready", timeout=5)
        report["serve"] = "ready" if r.status_code == 200 else f"not ready ({r.status_code}): {r.text[:200]}"
    except httpx.HTTPError as exc:
        report["serve"] = f"down: {exc}"
    report["dashboard"] = "up" if port_open("127.0.0.1", settings.dashboard_port) else "down"
    report["websocket"] = "up" if port_open(settings.ws_host, settings.ws_port) else "down"
    if args.json:
        echo(json.dumps(report, indent=2))
    else:
        for k, v in report.items():
            echo(f"{k:10s} {v}")
    healthy = all(str(v).startswith(("up", "ready")) for k, v in report.items() if k not in ("websocket",))
    return 0 if healthy else 1


def cmd_migrate(settings: Settings, args) -> int:
    from cluster.db import migrate

    applied = asyncio.run(migrate(settings))
    echo(f"applied {applied}" if applied else "schema up to date")
    return 0


def cmd_services(settings: Settings, args) -> int:
    from cluster.services import ensure_services

    for name, state in ensure_services(settings, start=not args.check_only, echo=echo).items():
        echo(f"{name}: {state}")
    return 0


def register(sub) -> None:
    """The commands that run the system on this machine, apart from `up` (deployments/cli.py)."""
    sub.add_parser("down", help="stop what `up` started").set_defaults(func=cmd_down)
    p = sub.add_parser("status", help="report each part")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_status)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    p = sub.add_parser("services", help="check (and start) PostgreSQL, Redis and NATS")
    p.add_argument("--check-only", action="store_true", help="report only; start nothing")
    p.set_defaults(func=cmd_services)
