"""The `chat` message of the WebSocket protocol: the same answer as POST /ai/chat with stream=true,
relayed from the `Chat` Serve deployment as frames `{"type": "chat", "id", "event", ...}`.

Each chat runs as its own task, so the connection keeps reading (pings, subscriptions) meanwhile; a
connection may run `MAX_CHATS` at once, and its chats are cancelled when it closes.
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable

from websockets.exceptions import ConnectionClosed

from cluster.logs import get_logger
from gateway.ws.protocol import ChatMsg, ProtocolError, dumps, error_obj

log = get_logger("ws.chat")
MAX_CHATS = 2
ChatEvents = Callable[[dict[str, Any]], AsyncIterator[dict[str, Any]]]


def serve_chat_events(app_name: str = "gpubroker") -> ChatEvents:
    """Events from the Chat deployment of the running Serve application (the gateway runs inside Ray)."""
    from ray import serve

    handle = serve.get_deployment_handle("Chat", app_name=app_name)
    return lambda payload: handle.options(stream=True).stream.remote(payload)


class ChatRelay:
    def __init__(self, events: ChatEvents | None = None):
        self._events = events
        self._running: dict[Any, set[asyncio.Task]] = {}

    def start(self, conn: Any, msg: ChatMsg) -> None:
        tasks = self._running.setdefault(conn, set())
        if len(tasks) >= MAX_CHATS:
            raise ProtocolError("too_many_chats", f"at most {MAX_CHATS} chats at once per connection")
        task = asyncio.get_running_loop().create_task(self._run(conn, msg))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def close(self, conn: Any) -> None:
        for task in self._running.pop(conn, set()):
            task.cancel()

    async def _run(self, conn: Any, msg: ChatMsg) -> None:
        payload = msg.model_dump(mode="json", exclude_unset=True, exclude={"type", "id", "stream"})
        try:
            if self._events is None:
                self._events = serve_chat_events()
            async for ev in self._events(payload):
                kind, data = ev["event"], ev["data"]
                if kind == "error":
                    e = data["error"]
                    await conn.send(dumps({**error_obj(e["code"], e["message"]), "id": msg.id}), text=True)
                    return
                frame = {"type": "chat", "id": msg.id, "event": kind}
                frame.update({"text": data["text"]} if kind == "token" else {"data": data})
                await conn.send(dumps(frame), text=True)
        except (ConnectionClosed, asyncio.CancelledError):
            return
        except Exception as exc:  # the Chat deployment is missing or failed: tell this client, keep the connection
            log.warning("ws chat failed", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})
            try:
                await conn.send(dumps({**error_obj("unavailable", "the chat service is unavailable"), "id": msg.id}),
                                text=True)
            except ConnectionClosed:
                pass
