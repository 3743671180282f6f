"""Keepalive for every connection of a process in one sweep per interval.

One sweep over all clients per `ws_ping_interval_s`, a shared ping frame written like the price frames,
instead of websockets' ping task per connection: profiled in benchmarks/ws.py (a), that took about
190 us of Python per ping, so a process with 5,000 connections spent ~1 s of every 20 s interval on pings.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

from websockets.asyncio.server import ServerConnection

from domain.stream_protocol import CLOSE_KEEPALIVE
from gateway.ws import metrics as m
from gateway.ws.fanout import Fanout
from gateway.ws.protocol import PING_FRAME


class KeepaliveConnection(ServerConnection):
    """A websockets connection that remembers when the client last sent anything (a pong included)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.gpb_rx = self.loop.time()

    def data_received(self, data: bytes) -> None:
        self.gpb_rx = self.loop.time()
        super().data_received(data)


async def keepalive(fanout: Fanout, interval_s: float, on_timeout: Callable[[ServerConnection], None]) -> None:
    """Every `interval_s`: close the clients that sent nothing back since the previous ping (dead peers,
    whose frames would otherwise pile up until TCP gives up), then ping the rest. Pings go through each
    client's queue like price frames, so they never cut into a frame. `on_timeout(conn)` logs the close."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval_s)
        now = loop.time()
        for c in list(fanout.clients):
            if c.replaying:  # its frames (a ping too) wait for the replay: judge it next time
                c.ping_at = 0.0
                continue
            if c.ping_at and c.conn.gpb_rx < c.ping_at:
                c.ping_at = 0.0
                m.WS_KEEPALIVE_TIMEOUTS.inc()
                on_timeout(c.conn)
                loop.create_task(close_silent(c.conn))
                continue
            c.ping_at = now
            c.push(PING_FRAME, 0, 0, 0)


async def close_silent(conn: ServerConnection) -> None:
    """Close a peer that stopped answering (1011), and drop its transport if the close gets no answer."""
    try:
        await asyncio.wait_for(conn.close(CLOSE_KEEPALIVE, "keepalive ping timeout"), 5)
    except Exception:
        pass
    finally:
        if conn.transport is not None and not conn.transport.is_closing():
            conn.transport.abort()  # a dead peer never answers the close frame either
