"""Fixtures for the ingestion tests: an Ingestor on the session's real PostgreSQL, Redis and NATS."""
from __future__ import annotations

import asyncio
import json

import pytest

from actors.pipeline import Ingestor


@pytest.fixture
async def ingestor(settings, pg, redis_client, nats_client):
    return Ingestor(settings, pg, redis=redis_client, js=nats_client.jetstream())


class Collector:
    """A core NATS subscription that collects messages on a subject pattern."""

    def __init__(self):
        self.msgs = []

    async def cb(self, msg):
        self.msgs.append(msg)

    async def settle(self, expected: int | None = None, timeout: float = 3.0) -> list:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            if expected is not None and len(self.msgs) >= expected:
                await asyncio.sleep(0.2)  # and nothing more arrives
                break
            await asyncio.sleep(0.05)
        return self.msgs

    def payloads(self) -> list[dict]:
        return [json.loads(m.data) for m in self.msgs]


@pytest.fixture
async def collect(nats_client):
    subs = []

    async def _collect(subj: str) -> Collector:
        c = Collector()
        subs.append(await nats_client.subscribe(subj, cb=c.cb))
        await nats_client.flush()
        return c

    yield _collect
    for s in subs:
        await s.unsubscribe()
