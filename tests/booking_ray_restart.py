"""Run by tests/test_bookings_faults.py as two subprocesses, each with its own local Ray (never the test
session's): `first` starts the booking hosts, lets them submit a Draft booking and stops the whole Ray
runtime while the booking is provisioning; `second` starts a new Ray runtime whose hosts rebuild the
booking from PostgreSQL and bring it to Active, all its events published.

    python -m tests.booking_ray_restart first|second '<settings json>' <booking id>

Prints one JSON line with the booking's state; exit status 0 when the phase reached its goal.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid

import asyncpg

from cluster.ray_env import ray_env
from cluster.settings import Settings


async def _state(dsn: str, booking_id: str) -> tuple[str, str | None, int]:
    conn = await asyncpg.connect(dsn)
    try:
        r = await conn.fetchrow("SELECT status, external_booking_id FROM bookings WHERE id = $1", uuid.UUID(booking_id))
        waiting = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL AND payload->>'booking_id' = $1",
                                      booking_id)
        return r["status"], r["external_booking_id"], waiting
    finally:
        await conn.close()


def _wait(settings: Settings, booking_id: str, ok, timeout: float) -> tuple[str, str | None, int]:
    end = time.monotonic() + timeout
    st: tuple[str, str | None, int] = ("?", None, -1)
    while time.monotonic() < end:
        st = asyncio.run(_state(settings.database_url, booking_id))
        if ok(st):
            break
        time.sleep(0.1)
    return st


def _start_ray():
    import ray

    ray.init(address="local", num_cpus=1, include_dashboard=False, namespace="booking-restart",
             _node_ip_address="127.0.0.1", log_to_driver=False)
    return ray


def main() -> int:
    phase, settings, booking_id = sys.argv[1], Settings.model_validate_json(sys.argv[2]), sys.argv[3]
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.update(ray_env(settings))
    from actors import booking_handles

    ray = _start_ray()
    booking_handles.start_hosts(settings)
    if phase == "first":
        st = _wait(settings, booking_id, lambda s: s[0] == "PendingProvision" and s[1] is not None, 60)
        ok = st[0] == "PendingProvision"
    else:
        st = _wait(settings, booking_id, lambda s: s[0] not in ("Draft", "PendingProvision") and s[2] == 0, 60)
        ok = st[0] == "Active"
    ray.shutdown()  # the whole runtime goes (in `first`: mid-provisioning; the sandbox's webhook dies with it)
    print(json.dumps({"phase": phase, "state": st[0], "external_id": st[1], "unpublished_events": st[2]}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
