"""The one pagination convention of every list route, and its opaque cursors.

A list route takes `limit` (items per page) and `cursor` (the `next_cursor` of the previous page, absent
for the first one) and answers `{"items": [...], "next_cursor": "..." | null}`; `next_cursor` is null on
the last page. A cursor is base64url of a small JSON object private to its route (a keyset position or
an offset); clients never build one. Routes that can count cheaply also answer `total`.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")
CURSOR_PATTERN = r"^[A-Za-z0-9_\-]{1,512}$"
CURSOR_DESCRIPTION = "the `next_cursor` of the previous page; omit for the first page"


class CursorError(ValueError):
    """A cursor that this route did not issue (malformed, or for another route)."""


def encode_cursor(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True, default=str).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """The position in `cursor`, which must hold exactly `keys`; raises CursorError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise CursorError("not a cursor issued by this route") from None
    if not isinstance(position, dict) or set(position) != set(keys):
        raise CursorError("not a cursor issued by this route")
    return position


class Page(BaseModel, Generic[T]):
    """One page of a list route."""

    model_config = ConfigDict(extra="forbid")

    items: list[T]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page; null on the last page")


__all__ = ["CURSOR_DESCRIPTION", "CURSOR_PATTERN", "CursorError", "Page", "decode_cursor", "encode_cursor"]
