"""NATS subject and JetStream stream naming, shared by publishers and subscribers.

Subjects follow ARCHITECTURE.md (`prices.<provider>.<gpu_type>`, `bookings.<id>`, `audit.<tenant>`),
prefixed by `settings.nats_prefix` so that isolated deployments (and test sessions) never cross.
"""
from __future__ import annotations

import re

from typing import Any

from cluster.settings import Settings

_TOKEN = re.compile(r"[^A-Za-z0-9_-]+")

# stream -> (subject root, max age seconds)
STREAMS: dict[str, tuple[str, int]] = {
    "PRICES": ("prices", 24 * 3600),
    "BOOKINGS": ("bookings", 7 * 24 * 3600),
    "AUDIT": ("audit", 2 * 365 * 24 * 3600),
}


def token(value: str) -> str:
    """One subject token: characters NATS treats specially ('.', '*', '>', spaces) become '_'."""
    return _TOKEN.sub("_", value).strip("_") or "_"


def subject(settings: Settings, root: str, *parts: str) -> str:
    return settings.nats_prefix + ".".join([root, *(token(p) for p in parts)])


def stream_name(settings: Settings, stream: str) -> str:
    return (settings.nats_prefix.replace(".", "_").replace("-", "_").upper()) + stream


async def ensure_streams(settings: Settings, js) -> None:
    """Create or update the JetStream streams (idempotent)."""
    from nats.js.api import StreamConfig

    for name, (root, max_age) in STREAMS.items():
        cfg = StreamConfig(name=stream_name(settings, name), subjects=[subject(settings, root) + ".>"],
                           max_age=max_age, duplicate_window=120)
        try:
            await js.add_stream(cfg)
        except Exception:
            await js.update_stream(cfg)


async def delete_streams(settings: Settings, js) -> None:
    """Remove this prefix's JetStream streams (throw-away test and benchmark deployments); missing ones are fine."""
    for name in STREAMS:
        try:
            await js.delete_stream(stream_name(settings, name))
        except Exception:
            pass


def jetstream_connection(js: Any) -> Any:
    """The NATS client a JetStream context publishes through: the outbox publisher asks it whether it is
    connected (to refuse at once rather than buffer) and sends a large batch as core publishes on it.
    nats-py (2.16) offers no accessor; this is the one place that reads the context's attribute. A caller
    that holds the client itself (`nc.jetstream()`) has no need of it."""
    return js._nc
