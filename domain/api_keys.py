"""API keys: their format, the request and answer models, and which roles a caller may give a key."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.models import Role
from domain.permissions import P, allowed

PREFIX = "gpb_"
_EXAMPLE_ID = "0b7e6c1a-5d2f-4e8b-9a3c-1d2e3f4a5b6c"


def new_key() -> str:
    """`gpb_` and 256 random bits (URL-safe base64)."""
    return PREFIX + secrets.token_urlsafe(32)


def is_api_key(token: str) -> bool:
    return token.startswith(PREFIX)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """What lists show of a key: enough to recognise it, useless to use it."""
    return key[:len(PREFIX) + 6]


def grantable(key_role: Role | str, caller_role: Role | str) -> bool:
    """A caller may give a key a role whose every permission the caller holds (no wider than its own)."""
    return all(allowed(caller_role, p) for p in P if allowed(key_role, p))


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "nightly price export", "role": "user", "expires_at": "2027-06-30T00:00:00Z"}]})

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$", description="what the key is for")
    role: Role | None = Field(None, description="the key's role, no wider than the caller's (default: the caller's)")
    expires_at: datetime | None = Field(None, description="when the key stops working (default: never)")

    @field_validator("expires_at")
    @classmethod
    def _future(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return v
        v = v if v.tzinfo else v.replace(tzinfo=timezone.utc)
        if v <= datetime.now(timezone.utc):
            raise ValueError("must be in the future")
        return v


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": _EXAMPLE_ID, "name": "nightly price export", "role": "user", "prefix": "gpb_Xk3q9Z",
        "created_at": "2026-12-01T14:00:00Z", "expires_at": "2027-06-30T00:00:00Z",
        "last_used_at": "2026-12-01T15:00:00Z"}]})

    id: str
    name: str
    role: Role
    prefix: str = Field(description="the key's first characters")
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


class ApiKeyCreated(ApiKeyOut):
    """The new key: `key` is shown this once and never again."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": _EXAMPLE_ID, "name": "nightly price export", "role": "user", "prefix": "gpb_Xk3q9Z",
        "created_at": "2026-12-01T14:00:00Z", "expires_at": "2027-06-30T00:00:00Z",
        "key": "gpb_Xk3q9Z0v4cJ8mN2pQ7rS1tU5wY9zA3bC6dE0fG4hK8"}]})

    key: str = Field(description="use as `Authorization: Bearer <key>`; shown only now")


class ApiKeyList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [
        ApiKeyOut.model_config["json_schema_extra"]["examples"][0]], "next_cursor": None}]})

    items: list[ApiKeyOut]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page; null on the last page")
