"""Booking events to WebSocket clients: the `bookings` subscription (tenant-scoped).

A client sends `{"type": "subscribe", "id": "mine", "stream": "bookings"}` and from then on receives
`{"type": "booking", "id": "mine", "event": {...}}` for every transition of its own tenant's bookings
(the tenant comes from the connection's token, never from the client). Events arrive on core NATS
(`bookings.<tenant>.<booking>`, the same messages JetStream stores in BOOKINGS); a message published twice
(an outbox relay after a crash) is delivered once, recognised by its Nats-Msg-Id. Delivery goes through
the client's bounded queue like price frames, so a slow client never delays the others.
"""
from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from typing import Any

from cluster.connections import NatsConnection
from cluster.logs import get_logger
from cluster.messaging import subject
from cluster.settings import Settings
from gateway.ws.protocol import ProtocolError, control_frame, dumps

log = get_logger("ws.bookings")
SEEN_MAX = 10_000  # message ids remembered for de-duplication


class BookingFeed:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.by_tenant: dict[str, dict[Any, set[str]]] = {}  # tenant -> client -> subscription ids
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.delivered = 0
        self.nats = NatsConnection(settings, "gpubroker-ws-bookings")
        self.subscribed = False
        self._task: asyncio.Task | None = None

    async def start(self) -> "BookingFeed":
        self.nats.start()
        self._task = asyncio.get_running_loop().create_task(self._subscribe())
        return self

    async def _subscribe(self) -> None:
        """Subscribe once connected (NATS down at start: price streaming is unaffected meanwhile); the
        client re-establishes the subscription itself after a reconnect."""
        await self.nats.connected.wait()
        while True:
            try:
                await self.nats.nc.subscribe(subject(self.settings, "bookings") + ".>", cb=self._on_msg)
                await self.nats.nc.flush()
                self.subscribed = True
                return
            except Exception as exc:  # disconnected again between connect and subscribe
                log.warning("booking events not followed yet", extra={"error": str(exc)[:200]})
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.nats.close()

    @property
    def connected(self) -> bool:
        nc = self.nats.nc
        return self.subscribed and nc is not None and nc.is_connected

    def count(self, client: Any) -> int:
        return len(self.by_tenant.get(client.tenant_id, {}).get(client, ()))

    async def subscribe(self, client: Any, msg: Any) -> None:
        if msg.resume_from_seq is not None or msg.filter.model_dump(exclude_none=True):
            raise ProtocolError("invalid", "a bookings subscription takes no filter and no resume_from_seq",
                                [{"field": "filter", "message": "not allowed with stream bookings"}])
        self.by_tenant.setdefault(client.tenant_id, {}).setdefault(client, set()).add(msg.id)
        await client.conn.send(dumps({"type": "subscribed", "id": msg.id, "stream": "bookings"}), text=True)

    def remove(self, client: Any, sub_id: str | None = None) -> bool:
        """Drop one bookings subscription (or all of a client's); True when something was dropped."""
        clients = self.by_tenant.get(client.tenant_id)
        ids = clients.get(client) if clients else None
        if not ids or (sub_id is not None and sub_id not in ids):
            return False
        if sub_id is None:
            ids.clear()
        else:
            ids.discard(sub_id)
        if not ids:
            del clients[client]
            if not clients:
                del self.by_tenant[client.tenant_id]
        return True

    async def _on_msg(self, msg: Any) -> None:
        msg_id = (msg.headers or {}).get("Nats-Msg-Id")
        if msg_id:
            if msg_id in self.seen:
                return
            self.seen[msg_id] = None
            if len(self.seen) > SEEN_MAX:
                self.seen.popitem(last=False)
        try:
            event = json.loads(msg.data)
            tenant = str(event["tenant_id"])
        except (ValueError, KeyError, TypeError):
            return
        for client, ids in list(self.by_tenant.get(tenant, {}).items()):
            for sub_id in sorted(ids):
                client.push(control_frame({"type": "booking", "id": sub_id, "event": event}), 0, 0, 0)
                self.delivered += 1
