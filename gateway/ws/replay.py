"""Resuming a subscription from a stream sequence: the updates a client missed, from memory or JetStream.

Each process keeps the last `ws_ring_size` updates it received (with their parsed view and the bytes sent
to clients); a resume that reaches back further reads the PRICES stream. Either way the replay is bounded
by `ws_replay_max` updates and `ws_replay_max_age_s`, and ends with a `replayed` frame that says so.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from datetime import datetime, timezone
from typing import Any

from cluster.settings import Settings
from gateway.ws import metrics as m
from gateway.ws.fanout import Client
from gateway.ws.filters import UpdateView
from gateway.ws.price_feed import PriceFeed
from gateway.ws.protocol import dumps, prices_payload, update_json

REPLAY_FRAME = 200  # updates per replay frame
# A resume needs the stream position, known once the feed has subscribed: a client that resumes right
# after the gateway (re)started waits for it this long at most (NATS down: it gets what is known).
REPLAY_FEED_WAIT_S = 5.0


def ts_epoch(v: Any) -> float | None:
    """An update's ISO-8601 `ts` as epoch seconds (naive means UTC); None when absent or malformed."""
    if not isinstance(v, str):
        return None
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


class Replayer:
    """The recent updates of this process, and the replay of what a filter matched after a sequence."""

    def __init__(self, settings: Settings, feed: PriceFeed):
        self.settings = settings
        self.feed = feed
        self.ring: deque[tuple[int, UpdateView, bytes, float]] = deque(maxlen=settings.ws_ring_size or None)

    def remember(self, seq: int, view: UpdateView, payload: bytes, ts: float) -> None:
        if self.ring.maxlen:
            self.ring.append((seq, view, payload, ts))

    async def replay(self, client: Client, sub_id: str, flt: Any, after_seq: int) -> None:
        """Send the updates after `after_seq` this filter matches, bounded by count and age."""
        s = self.settings
        if not self.feed.connected.is_set():
            try:
                await asyncio.wait_for(self.feed.connected.wait(), REPLAY_FEED_WAIT_S)
            except asyncio.TimeoutError:
                pass
        upto = self.feed.last_seq
        start, truncated = after_seq + 1, False
        if upto - after_seq > s.ws_replay_max:
            start, truncated = upto - s.ws_replay_max + 1, True
        min_ts = time.time() - s.ws_replay_max_age_s
        out: list[bytes] = []
        source = "memory"
        if start <= upto:
            if self.ring and self.ring[0][0] <= start:
                for seq, view, payload, ts in reversed(self.ring):
                    if seq < start:
                        break
                    if seq <= upto and ts >= min_ts and flt.matches(view):
                        out.append(payload)
                out.reverse()
            else:
                source = "jetstream"
                async for seq, data in self.feed.history(start, upto):
                    try:
                        d = json.loads(data)
                    except ValueError:
                        continue
                    ts = ts_epoch(d.get("ts")) or 0.0
                    if ts < min_ts:
                        truncated = True
                        continue
                    if flt.matches(UpdateView(d)):
                        out.append(update_json(d, seq))
        for i in range(0, len(out), REPLAY_FRAME):
            await client.conn.send(prices_payload(out[i:i + REPLAY_FRAME]), text=True)
        if out:
            m.WS_REPLAYED.labels(source).inc(len(out))
        await client.conn.send(dumps({"type": "replayed", "id": sub_id, "from_seq": start, "to_seq": upto,
                                      "count": len(out), "truncated": truncated}), text=True)
