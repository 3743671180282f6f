"""Handles of the BookingHost actors for the ingress, `gpubroker up` and tests: one named, detached actor
per shard, restarted by Ray after a crash (its `__init__` rebuilds the shard from PostgreSQL)."""
from __future__ import annotations

import asyncio
from typing import Any

from actors.booking_host import NAMESPACE, BookingHost, host_name, shard_of
from cluster.ray_env import actor_runtime_env

_REMOTE = None
_HANDLES: dict[str, Any] = {}


def get_or_create(settings: Any, shard: int, **options: Any) -> Any:
    """The shard's host actor, created on first use (named, detached, no CPU reserved). Ray restarts it
    wherever there is room when its process or node dies, and resends the calls that were in flight
    (transitions are versioned and events carry their message id, so a resent call changes nothing twice).
    `options`: more Ray actor options (a scheduling strategy). Blocking: call it from a thread, never from
    the event loop."""
    import ray

    global _REMOTE
    name = host_name(settings, shard)
    h = _HANDLES.get(name)
    if h is None:
        if _REMOTE is None:
            _REMOTE = ray.remote(BookingHost)
        h = _HANDLES[name] = _REMOTE.options(**{
            "name": name, "namespace": NAMESPACE, "get_if_exists": True, "lifetime": "detached", "num_cpus": 0,
            "max_restarts": -1, "max_task_retries": -1, "runtime_env": actor_runtime_env(settings), **options,
        }).remote(settings, shard, settings.booking_shards)
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
