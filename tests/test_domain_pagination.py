"""Cursor rules of every list route (domain.pagination): the opaque cursor's exact form and what it refuses."""
from __future__ import annotations

import base64
import re
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from domain.pagination import CURSOR_PATTERN, CursorError, Page, decode_cursor, encode_cursor


def test_cursor_is_unpadded_base64url_of_compact_sorted_json():
    cursor = encode_cursor({"id": 7, "after": "b"})
    assert cursor == "eyJhZnRlciI6ImIiLCJpZCI6N30"   # {"after":"b","id":7} without its "=" padding
    assert base64.urlsafe_b64decode(cursor + "=") == b'{"after":"b","id":7}'
    assert encode_cursor({"after": "b", "id": 7}) == cursor   # key order never changes a cursor
    assert re.fullmatch(CURSOR_PATTERN, cursor)


def test_cursor_renders_non_json_values_as_text():
    ts = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert decode_cursor(encode_cursor({"ts": ts}), ("ts",)) == {"ts": "2026-01-02 03:04:05+00:00"}


@pytest.mark.parametrize("position", [{"a": 1}, {"a": 12}, {"a": 123}, {"a": "x" * 40, "b": None}])
def test_cursor_round_trips_whatever_padding_it_lost(position):
    cursor = encode_cursor(position)
    assert "=" not in cursor
    assert decode_cursor(cursor, tuple(position)) == position


@pytest.mark.parametrize("cursor", [
    "!!!!",                                   # not base64: decodes to nothing, which is no JSON
    "bm90IGpzb24",                            # base64 of "not json"
    base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("="),   # not UTF-8
    encode_cursor([1, 2]),                   # JSON, but not an object
    encode_cursor({"a": 1}),                 # an object with other keys
    encode_cursor({"id": 1, "extra": 2}),    # more keys than the route's
])
def test_foreign_or_malformed_cursors_are_refused(cursor):
    with pytest.raises(CursorError, match="^not a cursor issued by this route$"):
        decode_cursor(cursor, ("id",))


def test_cursor_with_exactly_the_routes_keys_in_any_order_is_accepted():
    assert decode_cursor(encode_cursor({"b": 2, "a": 1}), ("a", "b")) == {"a": 1, "b": 2}


def test_page_refuses_unknown_fields_and_ends_with_a_null_cursor():
    assert Page[int](items=[1, 2]).model_dump() == {"items": [1, 2], "next_cursor": None}
    with pytest.raises(ValidationError):
        Page[int](items=[], total=3)
