"""The gateway's view of the PRICES stream: a live ordered consumer that survives NATS restarts, and
bounded history reads for clients that resume.

The connection is `cluster.connections.NatsConnection` (reconnects forever). After a reconnect the
consumer is re-created from the last stream sequence this process saw, so an outage of NATS (or of this
process's connection to it) skips nothing JetStream kept; messages seen twice are dropped by sequence.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable

from cluster.connections import NatsConnection
from cluster.logs import get_logger
from cluster.messaging import ensure_streams, stream_name, subject
from cluster.settings import Settings

log = get_logger("ws.feed")


class PriceFeed:
    """Follows `prices.>`; calls `on_update(data, stream_seq)` once per stream sequence, in order."""

    def __init__(self, settings: Settings, on_update: Callable[[bytes, int], None]):
        self.settings = settings
        self.on_update = on_update
        self.stream = stream_name(settings, "PRICES")
        self.subject = subject(settings, "prices") + ".>"
        self.last_seq = 0
        # A large pending buffer: a burst of updates waits in the client while the loop writes frames.
        self.nats = NatsConnection(settings, "gpubroker-ws", pending_size=64 * 1024 * 1024)
        self.nats.on_disconnect.append(self._disconnected)
        self.nats.on_reconnect.append(self._reconnected)
        self.js = None
        self._sub = None
        self._resubscribe = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.connected = asyncio.Event()
        self.resubscribes = 0

    async def start(self) -> None:
        self.nats.start()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.nats.close()

    async def _disconnected(self) -> None:
        self.connected.clear()

    async def _reconnected(self) -> None:
        self._resubscribe.set()

    async def _on_msg(self, msg) -> None:
        seq = msg.metadata.sequence.stream
        if seq <= self.last_seq:
            return  # seen before a re-subscribe
        self.last_seq = seq
        try:
            self.on_update(msg.data, seq)
        except Exception:  # one bad update must not stop the stream
            log.exception("price update handling failed")

    async def _subscribe(self) -> None:
        from nats.js.api import ConsumerConfig, DeliverPolicy

        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:
                pass
            self._sub = None
        await ensure_streams(self.settings, self.js)
        info = await self.js.stream_info(self.stream)
        if self.last_seq == 0:
            self.last_seq = info.state.last_seq  # start with what is published from now on
        # A stream that was re-created (sequence went back) restarts from its beginning.
        if info.state.last_seq < self.last_seq:
            log.warning("PRICES stream sequence went back; following from its start",
                        extra={"was": self.last_seq, "now": info.state.last_seq})
            self.last_seq = max(0, info.state.first_seq - 1)
        cfg = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.last_seq + 1)
        self._sub = await self.js.subscribe(self.subject, stream=self.stream, cb=self._on_msg, ordered_consumer=True,
                                            idle_heartbeat=2.0, config=cfg, pending_msgs_limit=1_000_000,
                                            pending_bytes_limit=256 * 1024 * 1024)
        self.connected.set()

    async def _run(self) -> None:
        await self.nats.connected.wait()  # `NatsConnection` keeps trying while NATS is down
        self.js = self.nats.nc.jetstream()
        delay = 0.2
        while True:
            try:
                self._resubscribe.clear()
                await self._subscribe()
                delay = 0.2
                await self._resubscribe.wait()
                self.resubscribes += 1
                log.info("nats reconnected, resuming prices", extra={"after_seq": self.last_seq})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected.clear()
                log.warning("prices subscription failed, retrying", extra={"error": str(exc)[:200]})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def history(self, start: int, upto: int, batch: int = 500) -> AsyncIterator[tuple[int, bytes]]:
        """Stream messages with start <= seq <= upto from JetStream (an ephemeral pull consumer)."""
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        if self.js is None or start > upto:
            return
        cfg = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start,
                             ack_policy=AckPolicy.NONE, inactive_threshold=30.0)
        psub = await self.js.pull_subscribe(self.subject, durable=None, stream=self.stream, config=cfg)
        try:
            seq = start - 1
            while seq < upto:
                try:
                    msgs = await psub.fetch(min(batch, upto - seq), timeout=2.0)
                except (NatsTimeout, asyncio.TimeoutError):
                    return
                for msg in msgs:
                    seq = msg.metadata.sequence.stream
                    if seq > upto:
                        return
                    yield seq, msg.data
        finally:
            try:
                await psub.unsubscribe()
            except Exception:
                pass
