"""A client of the live price stream (protocol v1: gateway/ws/PROTOCOL.md), for the SDK, tests and benchmarks.

It reconnects with exponential backoff (capped at 30 s, with jitter), re-sends its subscriptions with
`resume_from_seq` set to the last sequence it saw, and drops duplicates by `seq`. A refusal for a bad
token or unknown tenant (4401/4403) is final and raises `StreamRefused`; everything else is retried.

`token` is a string or a callable returning one (sync or async). With a callable the client sends a fresh
token (`{type: auth}`) `refresh_before_s` before the current one expires, so the stream is never cut, and
asks it again on every reconnect (after a 4440 "token expired" close, for instance). With a plain string
an expired token ends in `StreamRefused` at the next connect.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import random
import time
from collections import deque
from typing import Any, Awaitable, Callable, Union

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from domain.stream_protocol import FATAL_CLOSE_CODES

__all__ = ["PriceStreamClient", "StreamRefused", "backoff_delay"]

TokenSource = Union[str, Callable[[], Union[str, Awaitable[str]]]]


class StreamRefused(Exception):
    """The gateway refused this client for good (bad token, unknown tenant); retrying would not help."""

    def __init__(self, code: int, reason: str):
        super().__init__(f"refused ({code}): {reason}")
        self.code, self.reason = code, reason


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> float:
    """Exponential backoff with equal jitter: in [d/2, d] where d = min(cap, base * 2**attempt)."""
    d = min(cap, base * (2 ** min(attempt, 32)))
    return d / 2 + (rng or random).uniform(0, d / 2)


class PriceStreamClient:
    """Connects, authenticates, subscribes and keeps doing so; updates arrive de-duplicated, in `updates`
    (an asyncio.Queue of dicts) or through `on_updates(list_of_dicts)` when given."""

    def __init__(self, url: str, token: TokenSource, *, subscriptions: dict[str, dict[str, Any]] | None = None,
                 auth_in_header: bool = True, on_updates: Callable[[list[dict]], None] | None = None,
                 on_event: Callable[[dict], None] | None = None, backoff_base: float = 0.5,
                 backoff_cap: float = 30.0, dead_after_s: float | None = None, dedup_window: int = 65536,
                 refresh_before_s: float = 30.0):
        self.url = url
        self.token_source = token
        self.token = token if isinstance(token, str) else ""
        self.refresh_before_s = refresh_before_s
        self.token_expires_at: float | None = None
        self.refreshes = 0
        self.subscriptions = dict(subscriptions or {"default": {}})
        self.auth_in_header = auth_in_header
        self.on_updates = on_updates
        self.on_event = on_event
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.dead_after_s = dead_after_s
        self.updates: asyncio.Queue[dict] = asyncio.Queue()
        self.events: list[dict] = []  # control frames received (welcome, subscribed, lagged, ...), for tests
        self.last_seq = 0
        self.duplicates = 0
        self.connects = 0
        self.ready = asyncio.Event()  # set once subscribed on the current connection
        self.ws: ClientConnection | None = None
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        self._dedup_window = dedup_window
        self._closing = False

    async def run(self) -> None:
        """Run until `close()`; raise StreamRefused when the gateway refuses for good."""
        attempt = 0
        while not self._closing:
            try:
                await self._session()
                attempt = 0 if self.ready.is_set() else attempt + 1
            except StreamRefused:
                raise
            except (OSError, ConnectionClosed, InvalidStatus, asyncio.TimeoutError) as exc:
                if isinstance(exc, InvalidStatus) and exc.response.status_code == 401:
                    raise StreamRefused(4401, "HTTP 401") from None
                attempt = 0 if self.ready.is_set() else attempt + 1
            self.ready.clear()
            if not self._closing:
                await asyncio.sleep(backoff_delay(attempt, self.backoff_base, self.backoff_cap))

    async def close(self) -> None:
        self._closing = True
        if self.ws is not None:
            await self.ws.close()

    async def subscribe(self, sub_id: str, flt: dict[str, Any], resume_from_seq: int | None = None) -> None:
        """Add or replace a subscription (kept for reconnects)."""
        self.subscriptions[sub_id] = flt
        if self.ws is not None:
            msg: dict[str, Any] = {"type": "subscribe", "id": sub_id, "filter": flt}
            if resume_from_seq is not None:
                msg["resume_from_seq"] = resume_from_seq
            await self.ws.send(json.dumps(msg))

    async def unsubscribe(self, sub_id: str) -> None:
        self.subscriptions.pop(sub_id, None)
        if self.ws is not None:
            await self.ws.send(json.dumps({"type": "unsubscribe", "id": sub_id}))

    async def send_raw(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send(text)

    async def _fresh_token(self) -> str:
        if isinstance(self.token_source, str):
            return self.token_source
        tok = self.token_source()
        if inspect.isawaitable(tok):
            tok = await tok
        self.token = tok
        return tok

    async def _refresh_loop(self, ws: ClientConnection) -> None:
        """With a token callable: send a fresh token shortly before the current one expires."""
        while True:
            exp = self.token_expires_at
            if exp is None:
                return
            await asyncio.sleep(max(0.5, exp - self.refresh_before_s - time.time()))
            if self.token_expires_at != exp:
                continue  # a newer expiry arrived meanwhile
            await ws.send(json.dumps({"type": "auth", "token": await self._fresh_token()}))
            self.refreshes += 1
            # the `authenticated` answer moves token_expires_at; if it does not come, the gateway closes (4440)
            # at the deadline and run() reconnects with a fresh token
            await asyncio.sleep(min(5.0, max(0.5, exp - time.time())))
            if self.token_expires_at == exp:
                return

    async def _session(self) -> None:
        token = await self._fresh_token()
        self.token_expires_at = None
        headers = {"Authorization": f"Bearer {token}"} if self.auth_in_header else None
        async with connect(self.url, additional_headers=headers, compression=None, open_timeout=30,
                           max_size=16 * 1024 * 1024, ping_interval=None) as ws:
            self.ws = ws
            self.connects += 1
            refresher: asyncio.Task | None = None
            try:
                if not self.auth_in_header:
                    await ws.send(json.dumps({"type": "auth", "token": token}))
                resume = self.last_seq if self.last_seq else None
                for sub_id, flt in self.subscriptions.items():
                    msg: dict[str, Any] = {"type": "subscribe", "id": sub_id, "filter": flt}
                    if resume is not None:
                        msg["resume_from_seq"] = resume
                    await ws.send(json.dumps(msg))
                pending = len(self.subscriptions)
                while True:
                    raw = await (asyncio.wait_for(ws.recv(), self.dead_after_s) if self.dead_after_s
                                 else ws.recv())
                    msg = json.loads(raw)
                    if msg.get("type") == "prices":
                        self._deliver(msg["updates"])
                        continue
                    self.events.append(msg)
                    if self.on_event is not None:
                        self.on_event(msg)
                    if msg.get("type") in ("welcome", "authenticated") and msg.get("token_expires_at"):
                        self.token_expires_at = float(msg["token_expires_at"])
                        if not isinstance(self.token_source, str) and (refresher is None or refresher.done()):
                            refresher = asyncio.get_running_loop().create_task(self._refresh_loop(ws))
                    if msg.get("type") == "subscribed":
                        pending -= 1
                        if pending <= 0:
                            self.ready.set()
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else 1006
                if code in FATAL_CLOSE_CODES:
                    raise StreamRefused(code, exc.rcvd.reason if exc.rcvd else "") from None
                raise
            finally:
                if refresher is not None:
                    refresher.cancel()
                self.ws = None

    def _deliver(self, updates: list[dict]) -> None:
        fresh = []
        for u in updates:
            seq = u.get("seq")
            if seq in self._seen:
                self.duplicates += 1
                continue
            self._seen.add(seq)
            self._seen_order.append(seq)
            if len(self._seen_order) > self._dedup_window:
                self._seen.discard(self._seen_order.popleft())
            if seq > self.last_seq:
                self.last_seq = seq
            fresh.append(u)
        if not fresh:
            return
        if self.on_updates is not None:
            self.on_updates(fresh)
        else:
            for u in fresh:
                self.updates.put_nowait(u)
