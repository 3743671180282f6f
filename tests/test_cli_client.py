"""`gpubroker search`, `watch`, `--version` and the help of every flag, run as a user runs them (subprocess)."""
from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from deployments.cli import build_parser
from tests.search_fixtures import bump_generation, wait_for
from tests.ws_fixtures import make_tenant, price_update, publish, running_gateway, token_for

ROOT = Path(__file__).resolve().parent.parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUBROKER_")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


async def gpubroker(*args: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "deployments.cli", *args, env=_env(**env),
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


def test_every_flag_has_help():
    missing = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, p in action.choices.items():
                    walk(p, f"{name} {sub}")
            elif not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "gpubroker")
    assert missing == []


async def test_version_and_help():
    code, out, _ = await gpubroker("--version")
    assert code == 0 and out.strip() == "gpubroker 0.1.0"
    code, out, _ = await gpubroker("search", "--help")
    assert code == 0 and "--max-price USD" in out and "continent" in out


@pytest.fixture(scope="module")
async def cli_offers(serve_app, pg, redis_client, settings):
    await pg.execute("INSERT INTO providers (id, name) VALUES ('cli-a', 'CLI A') ON CONFLICT DO NOTHING")
    rows = [("H100-SXM", 2.1, "spot", "europe-west4", "NL", "EU"), ("H100-PCIe", 1.9, "spot", "europe-west1", "BE", "EU"),
            ("H100-SXM", 1.5, "spot", "us-east1", "US", "NA"), ("H100-SXM", 2.9, "spot", "europe-west4", "NL", "EU"),
            ("H100-SXM", 2.2, "on_demand", "europe-west4", "NL", "EU"), ("A100-80GB-SXM", 1.0, "spot", "europe-west4", "NL", "EU")]
    for n, (gpu, price, pricing, region, country, continent) in enumerate(rows):
        await pg.execute(
            "INSERT INTO offers (id, provider_id, external_id, name, gpu_type, gpu_count, price_per_hour, "
            "price_per_gpu_hour, pricing, region, country, continent) "
            "VALUES ($1, 'cli-a', $2, $2, $3, 1, $4, $4, $5, $6, $7, $8)",
            uuid.uuid4(), f"cli-{n}", gpu, price, pricing, region, country, continent)
    await bump_generation(redis_client, settings)
    import httpx

    async with httpx.AsyncClient(base_url=serve_app) as http:
        async def loaded():
            r = await http.get("/providers", params={"provider": "cli-a"})
            return r.status_code == 200 and r.json()["total"] == len(rows)
        await wait_for(loaded, timeout=20)
    return serve_app


SEARCH = ("search", "--gpu", "H100", "--max-price", "2.5", "--region", "eu", "--pricing", "spot", "--sort", "price",
          "--limit", "20", "--provider", "cli-a")


async def test_search_json(cli_offers):
    code, out, err = await gpubroker(*SEARCH, "--json", GPUBROKER_API=cli_offers)
    assert code == 0, err
    body = json.loads(out)
    assert body["total"] == 2 and body["next_cursor"] is None
    assert [(i["gpu_type"], i["price_per_hour"], i["region"]) for i in body["items"]] == [
        ("H100-PCIe", 1.9, "europe-west1"), ("H100-SXM", 2.1, "europe-west4")]


async def test_search_plain_table_when_piped(cli_offers):
    code, out, err = await gpubroker(*SEARCH, GPUBROKER_API=cli_offers)
    assert code == 0, err
    lines = [line.split("\t") for line in out.splitlines()]
    assert lines[0] == ["provider", "name", "GPU", "GPUs", "$/h", "$/GPU-h", "pricing", "region", "avail"]
    assert [(r[2], r[4], r[7]) for r in lines[1:]] == [("H100-PCIe", "1.9", "europe-west1"),
                                                       ("H100-SXM", "2.1", "europe-west4")]


async def test_search_table_in_a_terminal(cli_offers):
    """Under a pseudo-terminal the output is a drawn table with the same rows."""
    import pty

    leader, follower = pty.openpty()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "deployments.cli", *SEARCH, "--limit", "1",
                                                env=_env(GPUBROKER_API=cli_offers, COLUMNS="160"),
                                                stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    text = b"".join(chunks).decode()
    assert proc.returncode == 0, err
    assert "┃" in text or "│" in text  # box drawing: a table, not tab-separated lines
    assert "H100-PCIe" in text and "1 of 2 offers" in text and "\t" not in text


async def test_search_csv_and_country_and_sort(cli_offers):
    code, out, err = await gpubroker("search", "--gpu", "H100", "--region", "nl", "--provider", "cli-a",
                                     "--sort", "price-desc", "--csv", GPUBROKER_API=cli_offers)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [float(r["price_per_hour"]) for r in rows] == [2.9, 2.2, 2.1] and {r["country"] for r in rows} == {"NL"}


async def test_search_errors(cli_offers):
    code, _, err = await gpubroker("search", "--limit", "500", GPUBROKER_API=cli_offers)
    assert code == 1 and "validation_error" in err and "limit:" in err and "trace" in err
    code, _, err = await gpubroker("search", GPUBROKER_API="http://127.0.0.1:9")
    assert code == 2 and "cannot reach the API" in err
    code, _, err = await gpubroker("search", "--sort", "cheapest")
    assert code == 2 and "invalid choice" in err


@pytest.fixture(scope="module")
async def gw(settings, pg, redis_client, nats_client):
    g = await running_gateway(settings, ws_batch_ms=5)
    yield g
    await g.stop()


async def _watch(gw, settings, pg, *args: str):
    token = token_for(settings, await make_tenant(pg))
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "deployments.cli", "watch", *args,
        env=_env(GPUBROKER_WS=f"ws://127.0.0.1:{gw.port}/v1", GPUBROKER_API_KEY=token),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def _first_line(proc, settings, js, upd) -> str:
    async def publisher():
        while True:  # until the watcher has subscribed and prints
            await publish(settings, js, upd)
            await asyncio.sleep(0.3)
    task = asyncio.get_running_loop().create_task(publisher())
    try:
        return (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    finally:
        task.cancel()


async def test_watch_prints_matching_changes(gw, settings, pg, nats_client):
    proc = await _watch(gw, settings, pg, "--gpu", "H100", "--max-price", "2", "--count", "1", "--json")
    js = nats_client.jetstream()
    await publish(settings, js, price_update(gpu_type="H100_80GB_SXM5", price="2.75", provider="cli-w"))  # too dear
    line = await _first_line(proc, settings, js, price_update(gpu_type="H100_80GB_SXM5", price="1.85", old="1.95",
                                                              provider="cli-w", region="eu-west-1"))
    change = json.loads(line)
    assert change["provider"] == "cli-w" and change["new_price"] == "1.85" and change["region"] == "eu-west-1"
    assert await asyncio.wait_for(proc.wait(), 20) == 0


async def test_watch_runs_until_interrupted(gw, settings, pg, nats_client):
    proc = await _watch(gw, settings, pg, "--gpu", "H100")
    js = nats_client.jetstream()
    line = await _first_line(proc, settings, js, price_update(gpu_type="H100_80GB_SXM5", price="1.5", old=None,
                                                              provider="cli-w2"))
    assert " cli-w2 " in line and "new -> 1.5 up" in line
    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
