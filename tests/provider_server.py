"""A local HTTP server standing in for provider APIs, serving only RECORDED responses.

Paths are '/<mode>/<the provider's documented path>': mode 'ok' serves the recording (Azure split into two
pages linked by NextPageLink, as the Retail Prices API pages; RunPod's GraphQL response as recorded;
Vast.ai's recorded `offers` for the queried gpu_name), 'fail' answers HTTP 500, 'slow' sleeps past any
client timeout. `hits` counts requests per mode.
"""
from __future__ import annotations

import asyncio
import json
from collections import Counter

from aiohttp import web

from adapters import registry

RUNPOD_KEY = "test-runpod-key"


class LocalApiServer:
    """An aiohttp server on a free 127.0.0.1 port routing '/<mode>/<path>' to `handle`."""

    def __init__(self):
        self.runner: web.AppRunner | None = None
        self.base = ""

    async def start(self):
        app = web.Application()
        app.router.add_route("*", "/{mode}/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

    def url(self, mode: str) -> str:
        return f"{self.base}/{mode}"

    async def handle(self, request: web.Request) -> web.Response:
        raise NotImplementedError


class ProviderServer(LocalApiServer):
    def __init__(self):
        super().__init__()
        self.hits: Counter = Counter()
        self.azure = registry.build("azure").load_snapshot()
        self.runpod = registry.build("runpod").load_snapshot()
        self.vast = registry.build("vastai").load_snapshot()

    async def handle(self, request: web.Request) -> web.Response:
        mode, tail = request.match_info["mode"], request.match_info["tail"]
        self.hits[mode] += 1
        if mode == "fail":
            return web.json_response({"error": "internal"}, status=500)
        if mode == "slow":
            await asyncio.sleep(30)
            return web.json_response({})
        if tail == "api/retail/prices":
            half = len(self.azure) // 2
            if request.query.get("page") == "2":
                return web.json_response({"BillingCurrency": "USD", "Items": self.azure[half:], "NextPageLink": None,
                                          "Count": len(self.azure) - half})
            assert "$filter" in request.query
            nxt = f"{self.base}/{mode}/api/retail/prices?page=2"
            return web.json_response({"BillingCurrency": "USD", "Items": self.azure[:half], "NextPageLink": nxt,
                                      "Count": half})
        if tail == "graphql" and request.method == "POST":
            if request.query.get("api_key") != RUNPOD_KEY:
                return web.json_response({"errors": [{"message": "unauthorized"}]}, status=401)
            body = await request.json()
            assert "gpuTypes" in body["query"]
            return web.json_response(self.runpod)
        if tail == "api/v0/bundles/":
            q = json.loads(request.query["q"])
            model = q["gpu_name"]["eq"]
            return web.json_response({"offers": self.vast["offers_by_model"].get(model, [])})
        return web.json_response({"error": "not found"}, status=404)
