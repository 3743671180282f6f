"""Price stream protocol v1: client messages (validated), server frames (serialized once, shared).

See gateway/ws/PROTOCOL.md. Every server frame is a JSON object with a `type`; price updates travel in
`{"type": "prices", "updates": [...]}` frames whose bytes are built once per batch and written to every
client that shares the same subscriptions.
Close codes are `domain.stream_protocol` (the SDK's client reads them too).
"""
from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from websockets.frames import Frame, Opcode

from domain.chat import ChatRequest
from gateway.ws.filters import PriceFilter

PROTOCOL_VERSION = 1
SUBPROTOCOL = "gpubroker.prices.v1"


# The fields of an update as sent to clients (in this order), `seq` being the JetStream stream sequence.
UPDATE_FIELDS = ("version", "seq", "offer_id", "external_id", "provider", "gpu_type", "region", "pricing",
                 "old_price", "new_price", "availability", "ts", "gpu_count")

_Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuthMsg(_Msg):
    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=8192)


class SubscribeMsg(_Msg):
    type: Literal["subscribe"]
    id: _Name = "default"
    stream: Literal["prices", "bookings"] = "prices"  # bookings: the tenant's booking events (gateway/ws/bookings.py)
    filter: PriceFilter = Field(default_factory=PriceFilter)
    resume_from_seq: int | None = Field(None, ge=0, description="replay updates after this seq before live ones")


class UnsubscribeMsg(_Msg):
    type: Literal["unsubscribe"]
    id: _Name = "default"


class PingMsg(_Msg):
    type: Literal["ping"]
    nonce: str | None = Field(None, max_length=64)


class ChatMsg(ChatRequest):
    """The same request as POST /ai/chat (always streamed); `id` is echoed in every frame of the answer."""

    type: Literal["chat"]
    id: _Name = "chat"


ClientMsg = Annotated[Union[AuthMsg, SubscribeMsg, UnsubscribeMsg, PingMsg, ChatMsg], Field(discriminator="type")]
_client_msg = TypeAdapter(ClientMsg)


class ProtocolError(Exception):
    """A client message that is not valid protocol v1; answered with an error frame, the connection stays."""

    def __init__(self, code: str, message: str, details: Any = None):
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


def parse_client_message(raw: str | bytes) -> AuthMsg | SubscribeMsg | UnsubscribeMsg | PingMsg | ChatMsg:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode()
        except UnicodeDecodeError:
            raise ProtocolError("bad_message", "message is not UTF-8") from None
    if len(raw) > 65536:
        raise ProtocolError("bad_message", "message larger than 64 KiB")
    try:
        data = json.loads(raw)
    except ValueError:
        raise ProtocolError("bad_json", "message is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("bad_message", "message must be a JSON object with a string `type`")
    try:
        return _client_msg.validate_python(data)
    except ValidationError as exc:
        errs = [{"field": ".".join(str(x) for x in e["loc"][1:]) or "type", "message": e["msg"]} for e in exc.errors()]
        if errs and errs[0]["field"] == "type" and "tag" in exc.errors()[0]["type"]:
            raise ProtocolError("unknown_type", f"unknown message type {data['type'][:40]!r}") from None
        raise ProtocolError("invalid", f"invalid {data['type'][:40]} message: {errs[0]['field']}", errs) from None


def dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode()


def frame_bytes(payload: bytes) -> bytes:
    """The complete WebSocket text frame (FIN, unmasked: server side, no extension) for a UTF-8 JSON payload.

    Built by hand because it runs once per batch and group; equal to websockets' own serialization
    (`reference_frame_bytes`, checked by a test).
    """
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


def reference_frame_bytes(payload: bytes) -> bytes:
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


# The keepalive ping every client gets (server frame: unmasked, FIN, opcode 9, 4-byte payload).
PING_FRAME = bytes((0x89, 4)) + b"gpbk"


def control_frame(obj: dict[str, Any]) -> bytes:
    return frame_bytes(dumps(obj))


def update_json(d: dict[str, Any], seq: int) -> bytes:
    """One update as clients see it, serialized once per update."""
    out = {k: d.get(k) for k in UPDATE_FIELDS}
    out["seq"] = seq
    out["version"] = d.get("version", PROTOCOL_VERSION)
    return dumps(out)


_PRICES_HEAD = b'{"type":"prices","updates":['


def prices_payload(updates: list[bytes]) -> bytes:
    return _PRICES_HEAD + b",".join(updates) + b"]}"


def error_obj(code: str, message: str, details: Any = None) -> dict[str, Any]:
    e: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if details is not None:
        e["details"] = details
    return e
