"""Baseline for benchmarks/ws.py: a bare `websockets` broadcast server, the naive design the gateway is
measured against in the same run. One process; it follows NATS core `prices.>` (with the bench prefix)
and sends every update, serialized per message, to every connected client with `broadcast()`. It speaks
just enough of protocol v1 for the benchmark's clients (welcome, subscribed, prices); no auth, no filters,
no queues, no resume.

    python -m benchmarks.ws_bare --port P --nats-url URL --subject 'prefix.prices.>'
"""
from __future__ import annotations

import argparse
import asyncio
import json

import nats
from websockets.asyncio.server import broadcast, serve

CLIENTS: set = set()


async def handler(ws) -> None:
    CLIENTS.add(ws)
    try:
        await ws.send(json.dumps({"type": "welcome", "version": 1, "seq": 0}))
        async for raw in ws:
            msg = json.loads(raw)
            if msg.get("type") == "subscribe":
                await ws.send(json.dumps({"type": "subscribed", "id": msg.get("id", "default"), "seq": 0,
                                          "filter": msg.get("filter", {})}))
    except Exception:
        pass
    finally:
        CLIENTS.discard(ws)


async def main(port: int, nats_url: str, subj: str) -> None:
    seq = 0

    async def on_msg(m) -> None:
        nonlocal seq
        seq += 1
        update = json.loads(m.data)
        update["seq"] = seq
        broadcast(CLIENTS, json.dumps({"type": "prices", "updates": [update]}))

    nc = await nats.connect(nats_url)
    await nc.subscribe(subj, cb=on_msg)
    async with serve(handler, "127.0.0.1", port, compression=None, max_size=1 << 20, ping_interval=None):
        await asyncio.Future()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    ap.add_argument("--subject", required=True)
    a = ap.parse_args()
    asyncio.run(main(a.port, a.nats_url, a.subject))
