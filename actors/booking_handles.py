"""Handles of the BookingHost actors for the ingress, `gpubroker up` and tests: one named, detached actor
per shard, restarted by Ray after a crash (its `__init__` rebuilds the shard from PostgreSQL)."""
from __future__ import annotations

import asyncio
from typing import Any

from actors.booking_host import NAMESPACE, BookingHost, host_name, shard_of
from cluster.logs import get_logger
from cluster.ray_env import actor_runtime_env

log = get_logger("bookings")
_REMOTE = None
_HANDLES: dict[str, Any] = {}
# Accepted Drafts wait this long in the ingress to go to their host together: one actor call per host and
# window instead of one per booking (a Ray actor call cost the ingress ~14% of its CPU at 40 accepts/s,
# py-spy). Short against the provider's answer (1 s in the sandbox, minutes for real providers).
HANDOFF_WINDOW_S = 0.02
_PENDING: dict[str, dict[int, list[tuple]]] = {}  # per deployment (redis prefix): shard -> hand-offs
_FLUSHING: set[asyncio.Task] = set()


def get_or_create(settings: Any, shard: int) -> Any:
    """The shard's host actor, created on first use (named, detached, restarted by Ray, no CPU reserved).
    Blocking: call it from a thread, never from the event loop."""
    import ray

    global _REMOTE
    name = host_name(settings, shard)
    h = _HANDLES.get(name)
    if h is None:
        if _REMOTE is None:
            _REMOTE = ray.remote(BookingHost)
        h = _HANDLES[name] = _REMOTE.options(
            name=name, namespace=NAMESPACE, get_if_exists=True, lifetime="detached", num_cpus=0, max_restarts=-1,
            runtime_env=actor_runtime_env(settings)).remote(settings, shard, settings.booking_shards)
    return h


async def host_for(settings: Any, booking_id: Any) -> Any:
    name = host_name(settings, shard_of(booking_id, settings.booking_shards))
    h = _HANDLES.get(name)
    return h if h is not None else await asyncio.to_thread(get_or_create, settings, shard_of(booking_id, settings.booking_shards))


def start_hosts(settings: Any) -> list[Any]:
    """Create (or find) every host and wait for their rebuilds. Blocking."""
    import ray

    handles = [get_or_create(settings, k) for k in range(settings.booking_shards)]
    ray.get([h.ready.remote() for h in handles], timeout=120)
    return handles


def up_step(settings: Any, echo: Any) -> None:
    """`gpubroker up`: start the booking hosts; each rebuilds its live bookings from PostgreSQL."""
    import ray

    stats = ray.get([h.stats.remote() for h in start_hosts(settings)])
    echo(f"bookings: {len(stats)} booking hosts, {sum(s['live'] for s in stats)} live bookings resumed")


def hand_off(settings: Any, booking_id: Any, created_event: tuple | None, trace_id: str | None) -> None:
    """Hand an accepted Draft to its host without waiting (the host submits it and provisions). A hand-off
    lost with this process leaves the Draft in PostgreSQL, where its host adopts it on its next sweep."""
    pending = _PENDING.setdefault(settings.redis_prefix, {})
    pending.setdefault(shard_of(booking_id, settings.booking_shards), []).append(
        (str(booking_id), created_event, trace_id))
    if len(pending) == 1 and len(next(iter(pending.values()))) == 1:  # the first of this window
        asyncio.get_running_loop().call_later(HANDOFF_WINDOW_S, _start_flush, settings)


def _start_flush(settings: Any) -> None:
    task = asyncio.get_running_loop().create_task(_flush(settings, _PENDING.pop(settings.redis_prefix, {})))
    _FLUSHING.add(task)
    task.add_done_callback(_FLUSHING.discard)


async def _flush(settings: Any, batches: dict[int, list[tuple]]) -> None:
    for shard, items in batches.items():
        try:
            h = _HANDLES.get(host_name(settings, shard)) or await asyncio.to_thread(get_or_create, settings, shard)
            h.submit_many.remote(items)
        except Exception as exc:  # the host's sweep adopts these Drafts
            log.warning("booking hand-off failed; the Drafts wait for their host's sweep",
                        extra={"shard": shard, "count": len(items), "error": str(exc)[:200]})
