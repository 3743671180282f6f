"""The local services the system needs: check each, start one that is installed but stopped.

Start commands are those of `shared/SERVICES.md`. A service that is neither reachable nor installed is
reported with one clear line naming it and how to install it.
"""
from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import urlparse

import asyncpg
import nats
import redis.asyncio as aioredis

from cluster.settings import Settings


class ServiceUnavailable(RuntimeError):
    """A required local service is down and could not be started."""


@dataclass
class Service:
    name: str
    url: str
    check: Callable[[], Awaitable[None]]
    binary: str
    start_cmd: list[str]
    install_hint: str

    @property
    def is_local(self) -> bool:
        host = urlparse(self.url).hostname or "127.0.0.1"
        return host in ("127.0.0.1", "localhost", "::1")


def _pg_start_cmd() -> list[str]:
    versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1] if versions else "15", "main", "start"]


def services(settings: Settings) -> list[Service]:
    admin = settings.database_url.rsplit("/", 1)[0] + "/postgres"

    async def pg() -> None:
        conn = await asyncpg.connect(admin, timeout=3)
        await conn.close()

    async def rd() -> None:
        r = aioredis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        try:
            await r.ping()
        finally:
            await r.aclose()

    async def nt() -> None:
        nc = await nats.connect(servers=settings.nats_url.split(","), connect_timeout=2, max_reconnect_attempts=0,
                                allow_reconnect=False)
        try:
            await nc.jetstream().account_info()
        finally:
            await nc.close()

    nats_port = str(urlparse(settings.nats_url.split(",")[0]).port or 4222)
    redis_port = str(urlparse(settings.redis_url).port or 6379)
    return [
        Service("postgres", settings.database_url, pg, "pg_ctlcluster", _pg_start_cmd(),
                "apt-get install -y postgresql"),
        Service("redis", settings.redis_url, rd, "redis-server",
                ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", redis_port,
                 "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"],
                "apt-get install -y redis-server"),
        Service("nats", settings.nats_url, nt, "nats-server",
                ["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", "/usr/sbin/nats-server", "--",
                 "-a", "127.0.0.1", "-p", nats_port, "-js", "-sd", "/var/lib/nats-server", "-l",
                 "/var/log/nats-server.log"],
                "apt-get install -y nats-server"),
    ]


async def probe(svc: Service) -> str | None:
    """None when the service answers, else the error text."""
    try:
        await asyncio.wait_for(svc.check(), timeout=5)
        return None
    except Exception as exc:
        return str(exc) or type(exc).__name__


def ensure_services(settings: Settings, start: bool = True, echo: Callable[[str], None] = print) -> dict[str, str]:
    """Check every service; start a local one that is installed but down. Raises ServiceUnavailable."""
    result: dict[str, str] = {}
    missing: list[str] = []
    for svc in services(settings):
        err = asyncio.run(probe(svc))
        if err is None:
            result[svc.name] = "running"
            continue
        if not start or not svc.is_local:
            missing.append(f"{svc.name} is not reachable at {svc.url}: {err}")
            continue
        if shutil.which(svc.binary) is None and not os.path.exists(f"/usr/sbin/{svc.binary}"):
            missing.append(f"{svc.name} is not running at {svc.url} and is not installed ({svc.install_hint})")
            continue
        echo(f"starting {svc.name}: {' '.join(svc.start_cmd)}")
        subprocess.run(svc.start_cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while (err := asyncio.run(probe(svc))) is not None and time.monotonic() < deadline:
            time.sleep(0.5)
        if err is None:
            result[svc.name] = "started"
        else:
            missing.append(f"{svc.name} did not come up at {svc.url}: {err}")
    if missing:
        raise ServiceUnavailable("; ".join(missing))
    return result
