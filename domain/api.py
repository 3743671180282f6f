"""Request and response models of the HTTP API routes that have no domain model of their own (system, auth,
admin, GDPR).

The routes declare them as `response_model`, the OpenAPI document publishes them, and the Python SDK
(`gpubroker.client`) returns them: one schema for server, document and client. Each carries one example.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from domain.inputs import RequestModel
from domain.models import Plan, Role

_T = "2026-12-01T14:00:00Z"
_UID, _TID = "2f0c6f5e-3d1b-4c8e-9a55-1b0c2d3e4f50", "7a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


class Health(BaseModel):
    model_config = _example({"status": "ok"})
    status: str


class DependencyState(BaseModel):
    status: str = Field(description="up or down")
    latency_ms: float
    error: str | None = None


class Readiness(BaseModel):
    model_config = _example({"status": "ready", "dependencies": {
        "postgres": {"status": "up", "latency_ms": 1.2}, "redis": {"status": "up", "latency_ms": 0.4},
        "nats": {"status": "up", "latency_ms": 0.6}}})
    status: str
    dependencies: dict[str, DependencyState]


class Registered(BaseModel):
    model_config = _example({"user_id": _UID, "tenant_id": _TID, "role": "admin"})
    user_id: str
    tenant_id: str
    role: Role


class Tokens(BaseModel):
    model_config = _example({"access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIn0...", "token_type": "bearer",
                             "expires_in": 300, "refresh_token": "q0Wm...", "refresh_expires_in": 1209600})
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds")
    refresh_token: str
    refresh_expires_in: int = Field(description="seconds")


class MfaChallenge(BaseModel):
    model_config = _example({"mfa_required": True, "mfa_challenge": "3q2+7w...", "expires_in": 300})
    mfa_required: bool
    mfa_challenge: str
    expires_in: int


class Profile(BaseModel):
    model_config = _example({"id": _UID, "tenant_id": _TID, "email": "ada@example.com", "role": "admin",
                             "mfa_enabled": False, "created_at": _T})
    id: str
    tenant_id: str
    email: str
    role: Role
    mfa_enabled: bool
    created_at: datetime


class TotpEnrolment(BaseModel):
    model_config = _example({"secret": "JBSWY3DPEHPK3PXP",
                             "provisioning_uri": "otpauth://totp/GPU%20Broker:ada@example.com?secret=JBSWY3DPEHPK3PXP"})
    secret: str
    provisioning_uri: str


class MfaState(BaseModel):
    model_config = _example({"mfa_enabled": True, "recovery_codes": ["7kq2-9xw4-b3m8"]})
    mfa_enabled: bool
    recovery_codes: list[str] | None = Field(None, description="shown once, when TOTP is confirmed")


# The tenant record's fields and their bounds, written once: the admin request bodies below use them (the
# response, `TenantOut`, reports what is stored).
TenantName = Annotated[str, Field(min_length=1, max_length=200)]
RateLimitRps = Annotated[float, Field(gt=0, le=100_000, description="sustained requests per second")]
Burst = Annotated[int, Field(ge=1, le=1_000_000, description="requests allowed at once above the rate")]
Seats = Annotated[int, Field(ge=1, le=100_000, description="users the tenant may have")]
WsLimit = Annotated[int, Field(ge=0, le=100_000, description="concurrent WebSocket connections")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code invoices are shown in")]


class TenantIn(RequestModel):
    """POST /admin/tenants: a new tenant with its plan limits (platform operators only)."""
    name: TenantName
    plan: Plan = Plan.free
    rate_limit_rps: RateLimitRps = 100.0
    burst: Burst = 200
    seats: Seats = 5
    ws_limit: WsLimit = 10
    currency: Currency = "USD"


class TenantPatch(RequestModel):
    """PATCH /admin/tenants/{id}: the fields given change (plan limits: platform operators only)."""
    name: TenantName | None = None
    plan: Plan | None = None
    rate_limit_rps: RateLimitRps | None = None
    burst: Burst | None = None
    seats: Seats | None = None
    ws_limit: WsLimit | None = None
    currency: Currency | None = None


class TenantOut(BaseModel):
    model_config = _example({"id": _TID, "name": "acme", "plan": "free", "rate_limit_rps": 100.0, "burst": 200,
                             "seats": 5, "ws_limit": 10, "currency": "USD", "is_platform": False,
                             "created_at": _T, "updated_at": _T})
    id: str
    name: str
    plan: Plan
    rate_limit_rps: float
    burst: int
    seats: int
    ws_limit: int
    currency: str
    is_platform: bool
    created_at: datetime
    updated_at: datetime


class UserOut(Profile):
    """A user as an administrator sees it: the same fields as the user's own profile."""
    model_config = _example({"id": _UID, "tenant_id": _TID, "email": "ada@example.com", "role": "user",
                             "mfa_enabled": False, "created_at": _T})


class TenantList(BaseModel):
    model_config = _example({"items": [TenantOut.model_config["json_schema_extra"]["examples"][0]], "total": 1,
                             "next_cursor": None})
    items: list[TenantOut]
    total: int
    next_cursor: str | None = None


class UserList(BaseModel):
    model_config = _example({"items": [UserOut.model_config["json_schema_extra"]["examples"][0]], "total": 1,
                             "next_cursor": None})
    items: list[UserOut]
    total: int
    next_cursor: str | None = None


class RoleAssigned(BaseModel):
    model_config = _example({"id": _UID, "role": "manager"})
    id: str
    role: Role


class AuditEntryOut(BaseModel):
    id: int
    tenant_id: str | None
    user_id: str | None
    action: str
    target_type: str | None = None
    target_id: str | None = None
    ts: datetime
    ip: str | None = None
    user_agent: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    hash_prev: str | None = None
    hash_curr: str


class AuditPage(BaseModel):
    model_config = _example({"items": [{"id": 1, "tenant_id": _TID, "user_id": _UID, "action": "tenant.created",
                                        "target_type": "tenant", "target_id": _TID, "ts": _T, "ip": "127.0.0.0",
                                        "user_agent": None, "details": {"via": "register"}, "hash_prev": None,
                                        "hash_curr": "9f2c..."}], "next_cursor": None, "next_after_id": None})
    items: list[AuditEntryOut]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page; null on the last page")
    next_after_id: int | None = Field(None, description="the same position as an id, for `after_id`")


class AuditVerification(BaseModel):
    model_config = _example({"ok": True, "entries_checked": 12, "chains": 1, "first_broken": None,
                             "broken_chains": []})
    ok: bool
    entries_checked: int
    chains: int
    first_broken: dict[str, Any] | None = None
    broken_chains: list[dict[str, Any]]


class DataExport(BaseModel):
    model_config = _example({"generated_at": _T, "profile": {"id": _UID, "email": "ada@example.com"}, "sessions": [],
                             "mfa": None, "bookings": [], "invoices": [], "audit_entries": []})
    generated_at: datetime
    profile: dict[str, Any]
    sessions: list[dict[str, Any]]
    mfa: dict[str, Any] | None = None
    bookings: list[dict[str, Any]]
    invoices: list[dict[str, Any]]
    audit_entries: list[dict[str, Any]]


class Erased(BaseModel):
    model_config = _example({"status": "erased", "user_id": _UID})
    status: str
    user_id: str
