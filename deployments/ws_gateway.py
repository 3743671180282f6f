"""The WebSocket price gateway as detached Ray actors, started (idempotently) by `gpubroker up`.

One actor per gateway process (`settings.ws_processes`); with more than one they share `ws_port`
through SO_REUSEPORT and the kernel spreads connections across them.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

import ray

from cluster.ray_env import actor_runtime_env
from cluster.settings import Settings
from gateway.ws.server import PriceGateway

ACTOR_PREFIX = "ws-gateway-"


@ray.remote(num_cpus=0, max_restarts=-1)
class WsGatewayActor:
    """Owns one `PriceGateway`; the server starts with the actor (also after Ray restarts it)."""

    def __init__(self, settings: Settings, reuse_port: bool):
        self.gateway = PriceGateway(settings, reuse_port=reuse_port)
        self._started: asyncio.Task | None = None
        # Serve from birth: a call queued to ourselves runs once the actor is up, so when Ray restarts a
        # crashed gateway process the server is back on its port without waiting for the next `up`.
        ray.get_runtime_context().current_actor.start.remote()

    async def start(self) -> dict[str, Any]:
        """Start the server if it is not running yet (or its last start failed); returns its stats."""
        if self._started is None or (self._started.done() and self._started.exception() is not None):
            self._started = asyncio.get_running_loop().create_task(self.gateway.start())
        await asyncio.shield(self._started)
        return self.gateway.stats()

    async def stats(self) -> dict[str, Any]:
        """Clients, groups, last stream sequence and delivery counters of this process."""
        if self._started is None:
            return await self.start()
        return self.gateway.stats()

    async def stop(self) -> None:
        """Stop serving (the actor stays; `ray.kill` it to remove it)."""
        if self._started is not None:
            await self.gateway.stop()
            self._started = None


def gateway_actors(settings: Settings) -> list:
    """Get or create the named detached gateway actors (idempotent)."""
    n = settings.ws_processes
    # On a cluster the gateway's port must be on a known node (the one clients and the load balancer
    # reach): a sliver of that node's custom resource pins every gateway process there.
    placement = {"resources": {settings.ws_node_resource: 0.001}} if settings.ws_node_resource else {}
    return [
        WsGatewayActor.options(name=f"{ACTOR_PREFIX}{i}", lifetime="detached", get_if_exists=True,
                               runtime_env=actor_runtime_env(settings), **placement).remote(settings, n > 1)
        for i in range(n)
    ]


def start_ws_gateway(settings: Settings, echo: Callable[[str], None]) -> None:
    """`gpubroker up` step: make sure the gateway actors exist and listen on ws_host:ws_port."""
    actors = gateway_actors(settings)
    stats = ray.get([a.start.remote() for a in actors], timeout=120)
    clients = sum(s["clients"] for s in stats)
    echo(f"websocket gateway: ws://{settings.ws_host}:{settings.ws_port} "
         f"({len(actors)} process{'es' if len(actors) > 1 else ''}, {clients} clients)")
