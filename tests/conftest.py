"""Shared fixtures: one real local Ray + Serve per test session, a throw-away PostgreSQL database,
an isolated Redis key prefix and NATS subject prefix, all against the real local services."""
from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from cluster.settings import Settings, load_settings
from cluster.ports import free_port

SESSION_TAG = "t" + secrets.token_hex(4)
# the sandbox provider signs its webhooks with this; set before Ray starts so every worker inherits it
os.environ.setdefault("GPUBROKER_SECRET_PROVIDERS_SANDBOX_WEBHOOK_SECRET", "sbx-" + secrets.token_hex(16))
_OWN_BASETEMP = pytest.StashKey[str]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """tmp_path folders go into one folder of this session, removed at its end (pytest would keep the last three
    sessions' in /tmp/pytest-of-<user>)."""
    if config.option.basetemp is None:
        config.option.basetemp = tempfile.mkdtemp(prefix=f"gpubroker-{SESSION_TAG}-tmp-")
        config.stash[_OWN_BASETEMP] = config.option.basetemp


def pytest_unconfigure(config):
    if _OWN_BASETEMP in config.stash:
        shutil.rmtree(config.stash[_OWN_BASETEMP], ignore_errors=True)




@pytest.fixture(scope="session")
def state_dir():
    d = Path(tempfile.mkdtemp(prefix=f"gpubroker-{SESSION_TAG}-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(state_dir) -> Settings:
    return load_settings(
        database_url=f"postgresql://postgres@127.0.0.1:5432/gpubroker_{SESSION_TAG}",
        redis_prefix=f"{SESSION_TAG}:",
        nats_prefix=f"{SESSION_TAG}.",
        http_port=free_port(),
        ws_port=free_port(),
        haproxy_stats_port=free_port(),
        haproxy_metrics_port=free_port(),
        state_dir=state_dir,
        ingress_replicas_max=1,
        request_timeout_s=3,  # slow and incomplete requests are cut after this: short for the tests that wait
        log_level="WARNING",
    )


@pytest.fixture(scope="session")
async def database(settings):
    """A fresh database with every migration applied; dropped at the end of the session."""
    from cluster.db import migrate

    await migrate(settings)
    yield settings.database_url
    await drop_database(settings)


async def drop_database(settings: Settings) -> None:
    """Drop `settings`' database (a test session's or a module's own)."""
    conn = await asyncpg.connect(settings.database_url.rsplit("/", 1)[0] + "/postgres")
    try:
        # WITH (FORCE) ends the remaining sessions and drops in one step: a Ray worker or Serve replica still
        # shutting down can otherwise reconnect between a separate terminate and the DROP
        await conn.execute(f'DROP DATABASE IF EXISTS "{settings.database_name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def pg(database, settings):
    from cluster.db import create_pool

    pool = await create_pool(settings, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def redis_client(settings):
    import redis.asyncio as aioredis

    r = aioredis.from_url(settings.redis_url)
    yield r
    keys = [k async for k in r.scan_iter(match=f"{settings.redis_prefix}*")]
    if keys:
        await r.delete(*keys)
    await r.aclose()


@pytest.fixture(scope="session")
async def nats_client(settings):
    import nats

    from cluster.messaging import delete_streams, ensure_streams

    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream()
    await ensure_streams(settings, js)
    yield nc
    await delete_streams(settings, js)
    await nc.close()


def _kill_haproxy(port: int) -> None:
    """Serve's HAProxy outlives ray.shutdown(); stop the one bound to our port and wait until it is gone."""
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    pids = {int(part.split(",", 1)[0]) for part in out.split("pid=")[1:]}
    for pid in pids:
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        pids = {p for p in pids if Path(f"/proc/{p}").exists()}
        time.sleep(0.05)


@pytest.fixture(scope="session")
def ray_session(settings):
    """One local Ray for the whole test session (not Redis's 6379), shut down at the end."""
    import ray

    from cluster.ray_env import haproxy_dir, ray_env

    os.environ.update(ray_env(settings))  # creates HAProxy's folder: removed below, also when Ray fails to start
    try:
        # Ray's session folder (logs, sockets) inside the state dir, so it goes with it instead of piling up in /tmp/ray
        ray.init(address="local", num_cpus=2, include_dashboard=False, namespace=f"gpubroker-{SESSION_TAG}",
                 _node_ip_address="127.0.0.1", log_to_driver=False, _temp_dir=str(settings.state_dir / "ray"))
        yield ray
    finally:
        # ray.shutdown() ends the local cluster with every actor in it; serve.shutdown() would first wait
        # up to 30 s for the controller.
        ray.shutdown()
        _kill_haproxy(settings.http_port)
        shutil.rmtree(haproxy_dir(settings), ignore_errors=True)


@pytest.fixture(scope="session")
async def serve_app(ray_session, database, settings, nats_client):
    """The real Serve application on its own port; yields its base URL."""
    from deployments.app import deploy

    await asyncio.to_thread(deploy, settings)
    base = f"http://127.0.0.1:{settings.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:
        for _ in range(100):
            try:
                if (await c.get("/health")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    yield base


@pytest.fixture
async def http(serve_app):
    async with httpx.AsyncClient(base_url=serve_app, timeout=15) as c:
        yield c
