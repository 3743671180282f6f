"""Rules every request input obeys, whatever the route: the base of request body models and bounds of ids.

- Unknown fields are refused (422), so a misspelt field is never silently ignored.
- No string may hold a NUL character: PostgreSQL text cannot store one, so it would fail the statement
  (a 500) instead of the request (a 422).
- Integer ids and cursors are bounded by PostgreSQL's bigint (`BIGINT_MAX`).
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

BIGINT_MAX = 2 ** 63 - 1
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$"  # one @, a dot in the domain: a login email


def has_nul(value: Any) -> bool:
    """True when a string anywhere in `value` (strings, lists, dicts) holds a NUL character."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, (list, tuple, set)):
        return any(has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    return False


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields and NUL characters are validation errors."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if has_nul(value):
            raise ValueError("must not contain NUL characters")
        return value
