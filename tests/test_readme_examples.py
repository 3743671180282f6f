"""Every example of the README's "Use it from a script" section runs, as written, against the live app."""
from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from tests.booking_fixtures import booking_hosts, sandbox_offers, tenants  # noqa: F401
from tests.search_fixtures import bump_generation, wait_for
from tests.ws_fixtures import make_tenant, price_update, publish, running_gateway, token_for

ROOT = Path(__file__).resolve().parent.parent
SECTION = ROOT.joinpath("README.md").read_text().split("## Use it from a script", 1)[1].split("\n## ", 1)[0]
BLOCKS = re.findall(r"```(python|bash)\n(.*?)```", SECTION, re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
COMMANDS = [line for lang, code in BLOCKS if lang == "bash" for line in code.splitlines() if line.strip()]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUBROKER_")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


@pytest.fixture(scope="module")
async def readme_data(serve_app, pg, redis_client, settings):
    await pg.execute("INSERT INTO providers (id, name) VALUES ('readme-a', 'README A') ON CONFLICT DO NOTHING")
    # the cheapest offers of the session, so they top every example's price-sorted first page
    for n, (gpu, price) in enumerate((("H100-SXM", 0.0225), ("A100-80GB-SXM", 0.011))):
        oid = uuid.uuid4()
        await pg.execute(
            "INSERT INTO offers (id, provider_id, external_id, name, gpu_type, gpu_count, price_per_hour, "
            "price_per_gpu_hour, pricing, region, country, continent) "
            "VALUES ($1, 'readme-a', $2, $2, $3, 1, $4, $4, 'spot', 'readme-west1', 'DE', 'EU')",
            oid, f"readme-{n}", gpu, price)
        await pg.execute("INSERT INTO price_history (offer_id, price_per_hour, availability, recorded_at) "
                         "VALUES ($1, $2, 'up', $3)", oid, price, datetime(2025, 3, 5, tzinfo=timezone.utc))
    await bump_generation(redis_client, settings)
    async with httpx.AsyncClient(base_url=serve_app) as http:
        async def loaded():
            r = await http.get("/providers", params={"provider": "readme-a"})
            return r.status_code == 200 and r.json()["total"] == 2
        await wait_for(loaded, timeout=20)
    return serve_app


def test_the_section_has_examples():
    assert len(PYTHON) == 3 and len(COMMANDS) == 4
    assert all(c.startswith("gpubroker ") for c in COMMANDS)


@pytest.mark.parametrize("n", (0, 2))
async def test_python_example(readme_data, n):
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", PYTHON[n], env=_env(GPUBROKER_API=readme_data),
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    if n == 0:
        assert "readme-a readme-west1 0.0225" in lines
        assert any(line.startswith("readme-a readme-west1 spot [0.0225]") for line in lines)
    else:
        assert "readme-1 0.011" in lines


async def test_forecast_chat_and_booking_example(readme_data, tenants, sandbox_offers, redis_client, settings, pg):
    from ray import serve

    await bump_generation(redis_client, settings)  # the sandbox offers, searchable
    async with httpx.AsyncClient(base_url=readme_data) as http:
        async def searchable():
            r = await http.get("/providers", params={"provider": "sandbox", "availability": "up"})
            return r.status_code == 200 and r.json()["total"] > 0
        await wait_for(searchable, timeout=20)
    await serve.get_deployment_handle("Forecast", app_name="gpubroker").refresh.remote()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PYTHON[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=_env(GPUBROKER_API=readme_data, GPUBROKER_API_KEY=tenants["a"].access))
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    _, _, hourly, total, low, high = lines[0].split()
    assert float(total) == pytest.approx(float(hourly) * 100, rel=1e-3) and float(low) <= float(total) <= float(high)
    assert lines[1] == "readme-a 0.0225 0.225"  # the session's cheapest H100
    booking_id, state, price = lines[-2].split()
    row = await pg.fetchrow("SELECT b.status, b.price_per_hour, o.provider_id FROM bookings b "
                            "JOIN offers o ON o.id = b.offer_id WHERE b.id = $1::uuid", booking_id)
    # accepting answers with the committed Draft; its booking host provisions it in the background
    assert row["provider_id"] == "sandbox" and str(row["price_per_hour"]) == price and state == "Draft"
    assert lines[-1] == "Cancelled" and row["status"] == "Cancelled"


@pytest.mark.parametrize("n", range(3))
async def test_search_command(readme_data, n):
    argv = shlex.split(COMMANDS[n])
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "deployments.cli", *argv[1:],
                                                env=_env(GPUBROKER_API=readme_data),
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert ("readme-0" if "H100" in argv else "readme-1") in out.decode()


async def test_watch_command(readme_data, settings, pg, nats_client):
    gw = await running_gateway(settings, ws_batch_ms=5)
    try:
        argv = shlex.split(COMMANDS[3])
        token = token_for(settings, await make_tenant(pg))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "deployments.cli", *argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=_env(GPUBROKER_WS=f"ws://127.0.0.1:{gw.port}/v1", GPUBROKER_API_KEY=token))
        js = nats_client.jetstream()

        async def publisher():
            while True:
                await publish(settings, js, price_update(gpu_type="H100_80GB_SXM5", price="1.75", provider="readme-w"))
                await asyncio.sleep(0.3)
        task = asyncio.get_running_loop().create_task(publisher())
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        finally:
            task.cancel()
        assert " readme-w " in line and "-> 1.75" in line
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        await gw.stop()
