"""Rules every request body obeys (domain.inputs): no NUL character anywhere, no unknown field."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from domain.inputs import RequestModel, has_nul


@pytest.mark.parametrize("value, expected", [
    ("plain", False), ("a\x00b", True), ("\x00", True), ("", False),
    (["ok", "x\x00"], True), (["ok", "fine"], False), (("t\x00",), True), ({"s\x00"}, True), (set(), False),
    ({"k": "v"}, False), ({"k\x00": "v"}, True), ({"k": "v\x00"}, True), ({"k": ["deep", {"x": "\x00"}]}, True),
    (0, False), (None, False), (b"\x00", False),   # only text is checked: bytes never reach SQL text columns
])
def test_has_nul_looks_into_strings_lists_and_dict_keys_and_values(value, expected):
    assert has_nul(value) is expected


class _Body(RequestModel):
    name: str
    tags: list[str] = []


def test_request_model_refuses_nul_in_any_field_with_its_reason():
    assert _Body(name="ok", tags=["a"]).tags == ["a"]
    with pytest.raises(ValidationError) as exc:
        _Body(name="ok", tags=["a\x00"])
    (err,) = exc.value.errors()
    assert err["loc"] == ("tags",) and "must not contain NUL characters" in err["msg"]
    with pytest.raises(ValidationError, match="must not contain NUL characters"):
        _Body(name="bad\x00")


def test_request_model_refuses_unknown_fields():
    with pytest.raises(ValidationError) as exc:
        _Body(name="ok", colour="red")
    assert exc.value.errors()[0]["type"] == "extra_forbidden"
