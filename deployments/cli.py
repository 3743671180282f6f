"""The `gpubroker` command: `up` (services, migrations, Ray, the Serve application and the steps after it),
the commands of `cluster/control.py`, the feature commands, and the client commands of the SDK."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from actors import cli as ingest_cli
from cluster import audit_cli, billing_cli, control, operator_cli
from cluster.control import echo
from cluster.logs import configure_logging
from cluster.ray_env import metrics_env, ray_env, reset_metrics_dir
from cluster.settings import Settings, SettingsError, load_settings
from deployments import forecast_cli
from gpubroker import __version__
from gpubroker import cli as client_cli

CLIENT_COMMANDS = {"search", "watch"}


def cmd_up(settings: Settings, args) -> int:
    # Imported here, not at the top: Ray and Serve take several seconds to import, the service clients
    # about 1 s, and the client commands (`gpubroker search`, `watch`) need none of them.
    from actors.booking_handles import up_step as booking_hosts_up
    from cluster.db import migrate
    from cluster.services import ensure_services
    from deployments.app import deploy
    from deployments.ws_gateway import start_ws_gateway

    # After Serve is up; each is idempotent. The bundled catalog, GCP history backfill and provider adapter
    # actors; the WebSocket gateway; booking hosts rebuilding live bookings from PostgreSQL; the forecast
    # training schedule.
    after_serve = (ingest_cli.up_step, start_ws_gateway, booking_hosts_up, forecast_cli.up_step)
    t0 = time.monotonic()
    for name, state in ensure_services(settings, start=True, echo=echo).items():
        echo(f"{name}: {state}")
    applied = asyncio.run(migrate(settings))
    echo(f"migrations: {'applied ' + str(applied) if applied else 'up to date'}")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    started = control.start_ray_head(settings)
    if started:
        reset_metrics_dir(settings.state_dir)
    metrics_env(settings.state_dir)
    control.connect_ray(settings)
    echo("deploying Serve application")
    deploy(settings)
    control.wait_ready(settings)
    for step in after_serve:
        step(settings, echo)
    echo(f"GPU Broker is up ({time.monotonic() - t0:.0f}s):")
    for k, v in control.urls(settings).items():
        echo(f"  {k:14s} {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpubroker", description="GPU Broker: run the backend (up, down, status, "
                                     "...) and use the marketplace (search, watch)")
    parser.add_argument("--version", action="version", version=f"gpubroker {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start everything (idempotent) and print the URLs").set_defaults(func=cmd_up)
    control.register(sub)  # down, status, migrate, services
    audit_cli.register(sub)  # audit verify
    operator_cli.register(sub)  # operator create
    ingest_cli.register(sub)  # sync, replay
    billing_cli.register(sub)  # billing invoices, billing fx-rate
    forecast_cli.register(sub)  # forecast train|eval|plot
    client_cli.register(sub)  # search, watch: client commands through the SDK (no server settings)
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
