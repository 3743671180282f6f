"""Ray actors of ingestion: one `ProviderAdapter` per provider, feeding one `IngestWorker`.

`ProviderAdapter` owns its provider's schedule, circuit breaker, last sync, last error, latency and
offer count; it fetches and parses (provider-specific work) and hands the offers to the `IngestWorker`,
which owns the only database/Redis/NATS connections of ingestion (24 actors with a pool each would eat
PostgreSQL's connection limit). Both use num_cpus=0: they wait on I/O, and this machine has 2 cores.
"""
from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from cluster.logs import configure_logging, get_logger
from cluster.ray_env import actor_runtime_env
from cluster.settings import Settings

log = get_logger("provider_actor")
WORKER_NAME = "ingest-worker"


def adapter_actor_name(provider: str) -> str:
    return f"provider-adapter-{provider}"


class IngestWorker:
    """Ray actor: the ingestion pipeline (`actors.pipeline.Ingestor`) behind one connection set."""

    def __init__(self, settings: Settings):
        configure_logging(settings.log_level)
        self.settings = settings
        self._ingestor = None
        self._lock = asyncio.Lock()
        self._relay: asyncio.Task | None = None
        self._relay_now = asyncio.Event()

    async def _ing(self):
        if self._ingestor is None:
            async with self._lock:
                if self._ingestor is None:
                    from actors.pipeline import Ingestor
                    from cluster.runtime import Runtime

                    if getattr(self, "runtime", None) is None:
                        self.runtime = await Runtime(self.settings).start()
                    ing = Ingestor(self.settings, await self.runtime.get_pg(), self.runtime.redis)
                    self._ingestor = ing
                    await self._attach_js()

                    async def reconnected() -> None:
                        self._relay_now.set()

                    self.runtime.nats.on_reconnect.append(reconnected)
                    self._relay = asyncio.get_running_loop().create_task(
                        ing.relay_forever(self._relay_now, self._attach_js))
        return self._ingestor

    async def _attach_js(self) -> None:
        """Give the pipeline its JetStream context once NATS is first reached (the client then reconnects
        by itself, and the context stays valid); until then events wait in the outbox."""
        ing = self._ingestor
        if ing is None or ing.js is not None:
            return
        from cluster.messaging import ensure_streams

        try:
            js = (await self.runtime.get_nats()).jetstream()
            await ensure_streams(self.settings, js)
        except Exception as exc:
            log.warning("NATS unavailable to ingestion", extra={"error": str(exc)[:200]})
            return
        ing.js = js
        self._relay_now.set()

    async def ensure_provider(self, provider: str, name: str, endpoint: str | None = None) -> None:
        """Create or rename the provider row."""
        await (await self._ing()).ensure_provider(provider, name, endpoint)

    async def has_offers(self, provider: str) -> bool:
        """Whether any offer of the provider is stored."""
        return await (await self._ing()).has_offers(provider)

    async def ingest(self, provider: str, offers: list, **kw: Any):
        """Run one sync batch through the pipeline; returns SyncStats."""
        ing = await self._ing()
        await self._attach_js()
        return await ing.ingest(provider, offers, **kw)

    async def record_health(self, provider: str, status: str, **kw: Any) -> None:
        """Upsert the provider_health row."""
        await (await self._ing()).record_health(provider, status, **kw)


class _RemoteSink:
    """The `sync_provider` sink interface over an IngestWorker actor handle."""

    def __init__(self, handle: Any):
        self.h = handle

    async def ensure_provider(self, *a: Any) -> None:
        await self.h.ensure_provider.remote(*a)

    async def has_offers(self, provider: str) -> bool:
        return await self.h.has_offers.remote(provider)

    async def ingest(self, provider: str, offers: list, **kw: Any):
        return await self.h.ingest.remote(provider, offers, **kw)

    async def record_health(self, provider: str, status: str, **kw: Any) -> None:
        await self.h.record_health.remote(provider, status, **kw)


class ProviderAdapter:
    """Ray actor: one provider's sync loop and state."""

    def __init__(self, settings: Settings, provider: str, interval_s: float | None = None, worker: Any = None):
        configure_logging(settings.log_level)
        self.worker = worker  # the IngestWorker handle, passed in: no blocking actor lookup in async code
        from adapters import registry
        from cluster.secrets import secret_store

        self.settings = settings
        self.provider = provider
        self.interval_s = interval_s or settings.sync_interval_s
        self.adapter = registry.build(provider, settings, secret_store(settings))
        self.last_sync_ts: float | None = None
        self.last_error: str | None = None
        self.last_status = "unknown"
        self.latency_ms: float | None = None
        self.offers = 0
        self.syncs = 0
        self.next_sync_ts: float | None = None
        self._task: asyncio.Task | None = None
        self._sync_lock = asyncio.Lock()

    async def start(self, initial_delay_s: float | None = None) -> bool:
        """Start the schedule (idempotent). The first sync waits a jittered delay to spread load."""
        if self._task is None or self._task.done():
            delay = random.uniform(0, min(10.0, self.interval_s)) if initial_delay_s is None else initial_delay_s
            self._task = asyncio.get_running_loop().create_task(self._loop(delay))
        return True

    async def _loop(self, delay: float) -> None:
        self.next_sync_ts = time.time() + delay
        await asyncio.sleep(delay)
        while True:
            try:
                await self.sync_now()
            except Exception as exc:  # the loop itself must survive anything
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            self.next_sync_ts = time.time() + self.interval_s
            await asyncio.sleep(self.interval_s)

    async def sync_now(self) -> dict[str, Any]:
        """One sync now (serialized with the scheduled ones); returns the outcome as a dict."""
        from actors.sync import sync_provider

        async with self._sync_lock:
            if self.worker is None:
                import ray

                ns = ray.get_runtime_context().namespace
                self.worker = await asyncio.to_thread(ray.get_actor, WORKER_NAME, namespace=ns)
            out = await sync_provider(self.adapter, _RemoteSink(self.worker), live=self.settings.adapters_live)
        self.syncs += 1
        self.last_status, self.last_error, self.latency_ms = out.status, out.last_error, out.latency_ms
        if out.stats is not None:
            self.last_sync_ts = time.time()
            self.offers = out.stats.received
        return out.as_dict()

    async def status(self) -> dict[str, Any]:
        """Schedule and last-sync state of this provider."""
        return {"provider": self.provider, "status": self.last_status, "interval_s": self.interval_s,
                "last_sync_ts": self.last_sync_ts, "next_sync_ts": self.next_sync_ts, "last_error": self.last_error,
                "latency_ms": self.latency_ms, "offers": self.offers, "syncs": self.syncs,
                "breaker": self.adapter.breaker.state, "running": bool(self._task and not self._task.done())}


def start_actors(settings: Settings, providers: list[str] | None = None, *, interval_s: float | None = None,
                 start: bool = True, detached: bool = True) -> dict[str, Any]:
    """Create (or find) the IngestWorker and one ProviderAdapter per provider; start their schedules."""
    import ray

    from adapters import registry

    common = dict(num_cpus=0, get_if_exists=True, runtime_env=actor_runtime_env(settings))
    if detached:
        common["lifetime"] = "detached"
    worker = ray.remote(IngestWorker).options(name=WORKER_NAME, max_concurrency=64, **common).remote(settings)
    handles = {"__worker__": worker}
    for name in providers or registry.names():
        h = ray.remote(ProviderAdapter).options(name=adapter_actor_name(name), max_concurrency=8, **common) \
            .remote(settings, name, interval_s, worker)
        if start:
            h.start.remote()
        handles[name] = h
    return handles
