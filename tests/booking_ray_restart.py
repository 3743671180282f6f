"""Run by tests/test_bookings_faults.py in a subprocess with its own local Ray (never the test session's):
start the booking hosts, let them submit a Draft booking, stop the whole Ray runtime while the booking is
provisioning, start Ray again and wait until the rebuilt hosts bring the booking to Active.

    python -m tests.booking_ray_restart '<settings json>' <booking id>

Prints one JSON line: {"phases": [...], "state": ...}; exit status 0 when the booking became Active.
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


async def _state(dsn: str, booking_id: str) -> tuple[str, str | None]:
    conn = await asyncpg.connect(dsn)
    try:
        r = await conn.fetchrow("SELECT status, external_booking_id FROM bookings WHERE id = $1", uuid.UUID(booking_id))
        return r["status"], r["external_booking_id"]
    finally:
        await conn.close()


def _wait(settings: Settings, booking_id: str, ok, timeout: float) -> tuple[str, str | None]:
    end = time.monotonic() + timeout
    st: tuple[str, str | None] = ("?", None)
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
    settings = Settings.model_validate_json(sys.argv[1])
    booking_id = sys.argv[2]
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.update(ray_env(settings))
    from actors import booking_host

    phases = []
    ray = _start_ray()
    booking_host.start_hosts(settings)
    st = _wait(settings, booking_id, lambda s: s[0] == "PendingProvision" and s[1] is not None, 30)
    phases.append({"before_restart": st[0], "external_id": st[1]})
    ray.shutdown()  # the whole runtime goes, mid-provisioning (the sandbox's webhook dies with it)
    booking_host._HANDLES.clear()
    booking_host._REMOTE = None
    phases.append({"during_restart": _wait(settings, booking_id, lambda s: True, 1)[0]})
    ray = _start_ray()
    booking_host.start_hosts(settings)
    st = _wait(settings, booking_id, lambda s: s[0] not in ("Draft", "PendingProvision"), 40)
    phases.append({"after_restart": st[0]})
    ray.shutdown()
    print(json.dumps({"phases": phases, "state": st[0]}))
    return 0 if st[0] == "Active" else 1


if __name__ == "__main__":
    sys.exit(main())
