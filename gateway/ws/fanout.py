"""Fan-out of price updates to WebSocket clients: groups, batching, shared frames and bounded queues.

Cost model (why it looks like this): on a small machine the per-client work dominates, so
- clients with identical subscriptions share one `Group`; a batch window (`ws_batch_ms`) collects the
  updates a group matches, and each batch becomes ONE WebSocket frame whose bytes are written to every
  member (no per-client JSON or framing);
- groups are indexed by the GPU models their filters select, so an update only visits the groups that can
  match it, and which of those match apart from their price caps is remembered per update shape (GPU,
  provider, place, pricing, GPU count):
  a feed repeats few shapes, so the filters run once per shape and group set, then a float compare each;
- a client whose socket keeps up gets the frame written synchronously (no task switch); one whose
  transport is paused gets a bounded queue drained by its own task. When that queue is full it is
  dropped in favour of the newest frame and the client is sent a `lagged` notice: memory stays bounded
  and one slow client never delays the others.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Callable

from websockets.protocol import OPEN

from gateway.ws.filters import CompiledFilter, UpdateView
from gateway.ws.protocol import control_frame, frame_bytes, prices_payload


FLUSH_SLICE_S = 0.004  # longest stretch one flush writes before the event loop reads NATS again
ROUTES_MAX = 4096  # update shapes whose matching groups are remembered (all forgotten when a group comes or goes)
_NO_CAP = float("inf")


class Client:
    """One connected, authenticated WebSocket client."""

    __slots__ = ("conn", "tenant_id", "subject", "subs", "group", "queue", "queue_max", "writer", "replaying",
                 "lag_dropped", "lag_from", "lag_to", "last_seq", "fanout", "ping_at", "__weakref__")

    def __init__(self, conn: Any, tenant_id: str, subject: str, queue_max: int, fanout: "Fanout"):
        self.conn = conn
        self.tenant_id = tenant_id
        self.subject = subject
        self.subs: dict[str, CompiledFilter] = {}
        self.group: Group | None = None
        # entries: (frame bytes, n updates, first seq, last seq)
        self.queue: deque[tuple[bytes, int, int, int]] = deque()
        self.queue_max = queue_max
        self.writer: asyncio.Task | None = None
        self.replaying = False
        self.lag_dropped = 0
        self.lag_from = 0
        self.lag_to = 0
        self.last_seq = 0
        self.fanout = fanout
        self.ping_at = 0.0  # loop time of the last keepalive ping (0: none yet)

    def push(self, frame: bytes, n: int, first: int, last: int) -> int:
        """Deliver or queue one frame; returns the number of updates dropped to make room (0 normally)."""
        conn = self.conn
        if conn.protocol.state is not OPEN:
            return 0
        if not self.queue and not self.replaying and not conn.paused and conn.send_in_progress is None:
            conn.transport.write(frame)
            if last:
                self.last_seq = last
            return 0
        dropped = 0
        if len(self.queue) >= self.queue_max:
            # Skip to the newest: forget what is queued, remember the gap for the `lagged` notice.
            for _f, k, a, b in self.queue:
                if k:
                    dropped += k
                    self.lag_from = self.lag_from or a
                    self.lag_to = b
            self.queue.clear()
            self.lag_dropped += dropped
        self.queue.append((frame, n, first, last))
        if self.writer is None and not self.replaying:
            self.writer = asyncio.get_running_loop().create_task(self._drain())
        return dropped

    def end_replay(self) -> None:
        self.replaying = False
        if (self.queue or self.lag_dropped) and self.writer is None:
            self.writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        conn = self.conn
        try:
            while (self.queue or self.lag_dropped) and conn.protocol.state is OPEN:
                if conn.paused:
                    await conn.drain()
                    continue
                if self.lag_dropped:
                    conn.transport.write(control_frame({"type": "lagged", "dropped": self.lag_dropped,
                                                        "from_seq": self.lag_from, "to_seq": self.lag_to}))
                    self.fanout.lagged_events += 1
                    self.lag_dropped = self.lag_from = self.lag_to = 0
                    continue
                frame, _n, _a, last = self.queue.popleft()
                conn.transport.write(frame)
                if last:
                    self.last_seq = last
                await asyncio.sleep(0)  # let other clients and the NATS reader run
        except Exception:  # the connection went away under us; the handler cleans up
            pass
        finally:
            self.writer = None


class Group:
    """Clients with identical subscriptions: they receive the same frames."""

    __slots__ = ("key", "filters", "members", "pending", "first_seq", "last_seq", "oldest_rx", "matches")

    def __init__(self, key: tuple[str, ...], filters: list[CompiledFilter]):
        self.key = key
        self.filters = filters
        # Most groups have one filter: call it directly (this runs per update and candidate group).
        self.matches: Callable[[UpdateView], bool] = filters[0].matches if len(filters) == 1 else self._any_matches
        self.members: set[Client] = set()
        self.pending: list[bytes] = []
        self.first_seq = 0
        self.last_seq = 0
        self.oldest_rx = 0.0

    def _any_matches(self, u: UpdateView) -> bool:
        for f in self.filters:
            if f.matches(u):
                return True
        return False

    def price_cap(self, u: UpdateView) -> float | None:
        """None when no filter matches `u` apart from price caps; else the highest cap among those that do
        (inf when one has none): the group matches exactly when the update's price is within it."""
        cap = None
        for f in self.filters:
            if f.matches_shape(u):
                fc = _NO_CAP if f.max_price is None else f.max_price
                cap = fc if cap is None or fc > cap else cap
        return cap


class Fanout:
    """The registry of clients and groups, and the batcher."""

    def __init__(self, batch_s: float, on_flush: Callable[[int, int, int, float], None] | None = None):
        self.batch_s = batch_s
        self.clients: set[Client] = set()
        self.groups: dict[tuple[str, ...], Group] = {}
        self.by_family: dict[str, set[Group]] = {}
        self.any_family: set[Group] = set()
        self._dirty: list[Group] = []
        # update shape -> [(group, price cap)] of the groups that match it apart from price
        self._routes: dict[tuple, list[tuple[Group, float]]] = {}
        self._flush_handle: asyncio.Handle | None = None
        self.on_flush = on_flush  # (frames, deliveries, dropped, oldest receive monotonic) per flush
        self.lagged_events = 0

    # registry -----------------------------------------------------------------------------------------
    def add(self, client: Client) -> None:
        self.clients.add(client)

    def remove(self, client: Client) -> None:
        self.clients.discard(client)
        self._leave(client)
        if client.writer is not None:
            client.writer.cancel()

    def set_subscriptions(self, client: Client, subs: dict[str, CompiledFilter]) -> None:
        """Replace a client's subscriptions; it moves to the group of clients with the same filters."""
        self._leave(client)
        client.subs = subs
        if not subs:
            return
        key = tuple(sorted({f.source.model_dump_json() for f in subs.values()}))
        g = self.groups.get(key)
        if g is None:
            uniq: dict[str, CompiledFilter] = {}
            for f in subs.values():
                uniq.setdefault(f.source.model_dump_json(), f)
            g = self.groups[key] = Group(key, list(uniq.values()))
            fams: set[str] = set()
            for f in g.filters:
                if f.families is None:
                    fams = set()
                    self.any_family.add(g)
                    break
                fams |= f.families
            for fam in fams:
                self.by_family.setdefault(fam, set()).add(g)
            self._routes.clear()
        g.members.add(client)
        client.group = g

    def _leave(self, client: Client) -> None:
        g = client.group
        client.group = None
        if g is None:
            return
        g.members.discard(client)
        if not g.members:
            del self.groups[g.key]
            self._routes.clear()
            self.any_family.discard(g)
            for fam, gs in list(self.by_family.items()):
                gs.discard(g)
                if not gs:
                    del self.by_family[fam]

    # data path ----------------------------------------------------------------------------------------
    def route(self, view: UpdateView) -> list[tuple[Group, float]]:
        """The groups that match updates of this shape apart from price, with their price caps (cached)."""
        routes = self._routes
        r = routes.get(view.shape)
        if r is None:
            r = []
            seen: set[Group] = set()
            for gs in (*(self.by_family.get(k) for k in view.families), self.any_family):
                for g in gs or ():
                    if g in seen:
                        continue
                    seen.add(g)
                    cap = g.price_cap(view)
                    if cap is not None:
                        r.append((g, cap))
            if len(routes) >= ROUTES_MAX:
                routes.clear()
            routes[view.shape] = r
        return r

    def publish(self, view: UpdateView, seq: int, payload: bytes, rx: float) -> int:
        """Route one update (already serialized once) to the groups it matches; returns how many matched."""
        matched = 0
        price = view.price
        for g, cap in self.route(view):
            if cap is not _NO_CAP and (price is None or price > cap):
                continue
            if not g.pending:
                g.first_seq = seq
                g.oldest_rx = rx
                self._dirty.append(g)
            g.pending.append(payload)
            g.last_seq = seq
            matched += 1
        if matched and self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = (loop.call_later(self.batch_s, self.flush) if self.batch_s > 0
                                  else loop.call_soon(self.flush))
        return matched

    def flush(self) -> None:
        """Turn each dirty group's batch into one frame and hand it to every member.

        A flush works in slices of FLUSH_SLICE_S: when the dirty groups take longer (thousands of clients),
        the rest waits for the next loop iteration (call_soon), so updates arriving meanwhile are read from
        NATS and join the batches of the groups not visited yet. An update then waits at most one pass
        over the clients, not the rest of a long flush plus the batch window plus another pass.
        """
        self._flush_handle = None
        dirty, self._dirty = self._dirty, []
        frames = deliveries = dropped = 0
        oldest = time.monotonic()
        deadline = oldest + FLUSH_SLICE_S
        for i, g in enumerate(dirty, 1):
            if not g.pending:
                continue
            n = len(g.pending)
            frame = frame_bytes(prices_payload(g.pending))
            g.pending = []
            oldest = min(oldest, g.oldest_rx)
            for c in g.members:
                dropped += c.push(frame, n, g.first_seq, g.last_seq)
            frames += len(g.members)
            deliveries += n * len(g.members)
            if i < len(dirty) and frames >= 64 and time.monotonic() > deadline:
                # not done: the unvisited groups go first in the next slice, groups dirtied meanwhile after
                self._dirty[:0] = dirty[i:]
                self._flush_handle = asyncio.get_running_loop().call_soon(self.flush)
                break
        if self.on_flush is not None and frames:
            self.on_flush(frames, deliveries, dropped, oldest)

    def broadcast(self, frame: bytes) -> int:
        """A control frame (heartbeat) to every client, through the same queues so order is kept."""
        dropped = 0
        for c in list(self.clients):
            dropped += c.push(frame, 0, 0, 0)
        return dropped
