"""The data model of the specification (SRS 3.4 / 3.8), one pydantic family shared by API, actors and storage."""
from __future__ import annotations

import enum
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", from_attributes=True)


class Role(str, enum.Enum):
    admin = "admin"
    manager = "manager"
    user = "user"
    auditor = "auditor"


class Plan(str, enum.Enum):
    free = "free"
    pro = "pro"
    enterprise = "enterprise"


class Pricing(str, enum.Enum):
    on_demand = "on_demand"
    spot = "spot"
    interruptible = "interruptible"


class Availability(str, enum.Enum):
    up = "up"
    degraded = "degraded"
    down = "down"


class BookingState(str, enum.Enum):
    draft = "Draft"
    pending_provision = "PendingProvision"
    active = "Active"
    completed = "Completed"
    failed = "Failed"
    cancelled = "Cancelled"


class Offer(_Model):
    """A normalized GPU/AI instance SKU (SRS GPU_Offer plus the fields the marketplace filters on).

    `price_per_hour` is always the whole instance per hour in `currency`; `price_per_gpu_hour` is derived.
    """

    id: uuid.UUID | None = None
    provider: str = Field(min_length=1, max_length=64)
    external_id: str = Field(min_length=1, max_length=512)
    name: str = Field(min_length=1, max_length=512)
    gpu_type: str = Field(min_length=1, max_length=64)
    gpu_vendor: str | None = None
    gpu_count: float = Field(gt=0, le=64)
    gpu_memory_gb: float | None = Field(default=None, ge=0)
    form_factor: str | None = None
    vcpu: float | None = Field(default=None, ge=0)
    memory_gb: float | None = Field(default=None, ge=0)
    storage_gb: float | None = Field(default=None, ge=0)
    price_per_hour: Decimal = Field(gt=0, max_digits=14, decimal_places=6)
    price_per_gpu_hour: Decimal | None = None
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    pricing: Pricing = Pricing.on_demand
    region: str = Field(min_length=1, max_length=128)
    country: str | None = Field(default=None, max_length=2)
    continent: str | None = Field(default=None, max_length=2)
    availability: Availability = Availability.up
    tags: list[str] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(default_factory=dict)
    last_updated: datetime = Field(default_factory=utcnow)

    @field_validator("price_per_hour", mode="before")
    @classmethod
    def _round_price(cls, v: Any) -> Any:
        if isinstance(v, float):
            return Decimal(repr(v)).quantize(Decimal("0.000001"))
        if isinstance(v, Decimal):
            return v.quantize(Decimal("0.000001"))
        return v

    def model_post_init(self, __context: Any) -> None:
        if self.price_per_gpu_hour is None:
            per_gpu = (self.price_per_hour / Decimal(str(self.gpu_count))).quantize(Decimal("0.000001"))
            object.__setattr__(self, "price_per_gpu_hour", per_gpu)


class PriceUpdate(_Model):
    """A price delta as published on NATS `prices.<provider>.<gpu_type>` (schema version 1)."""

    version: int = 1
    offer_id: uuid.UUID
    external_id: str
    provider: str
    gpu_type: str
    region: str
    pricing: Pricing = Pricing.on_demand
    old_price: Decimal | None
    new_price: Decimal
    availability: Availability
    ts: datetime = Field(default_factory=utcnow)
    gpu_count: float | None = Field(None, description="GPUs per instance (stream filters on gpu_count read it)")


class ErrorDetail(_Model):
    code: str
    message: str
    details: Any | None = None
    trace_id: str


class ErrorBody(_Model):
    """The one error shape every endpoint returns: {"error": {code, message, details?, trace_id}}."""

    error: ErrorDetail


OFFER_EXAMPLE: dict[str, Any] = {"id": "5b8e2f4c-1d3a-4e6b-8c9d-0a1b2c3d4e5f", "provider": "gcp", "name": "a3-highgpu-1g", "gpu_type": "H100-SXM",
        "gpu_count": 1.0, "gpu_memory_gb": 80.0, "vcpu": 26.0, "memory_gb": 234.0, "storage_gb": None,
        "price_per_hour": 11.06, "price_per_gpu_hour": 11.06, "currency": "USD", "pricing": "on_demand",
        "region": "europe-west4", "country": "NL", "continent": "EU", "availability": "up", "tags": ["sxm"],
        "last_updated": "2026-12-01T14:00:00Z"}


class ProviderOffer(_Model):
    """One marketplace search item (SRS 5 ProviderOffer plus the normalized fields search filters on)."""

    model_config = ConfigDict(extra="forbid", from_attributes=True, json_schema_extra={"examples": [OFFER_EXAMPLE]})

    id: uuid.UUID
    provider: str
    name: str
    gpu_type: str
    gpu_count: float
    gpu_memory_gb: float | None = None
    vcpu: float | None = None
    memory_gb: float | None = None
    storage_gb: float | None = None
    price_per_hour: float
    price_per_gpu_hour: float
    currency: str
    pricing: Pricing
    region: str
    country: str | None = None
    continent: str | None = None
    availability: Availability
    tags: list[str]
    last_updated: datetime


class SearchPage(_Model):
    """GET /providers: {total, items, warnings?}."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"total": 1, "items": [OFFER_EXAMPLE]}]})

    total: int
    items: list[ProviderOffer]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page; null on the last page")
    warnings: list[str] | None = None


class PricePoint(_Model):
    price_per_hour: float
    availability: Availability
    recorded_at: datetime


class OfferDetail(ProviderOffer):
    """GET /providers/{id}: the search item plus identity details and recent price history (newest first)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        **OFFER_EXAMPLE, "external_id": "a3-highgpu-1g:europe-west4", "gpu_vendor": "NVIDIA", "form_factor": "SXM",
        "attributes": {}, "created_at": "2026-11-01T00:00:00Z", "last_seen_at": "2026-12-01T14:00:00Z",
        "price_history": [{"price_per_hour": 11.06, "availability": "up", "recorded_at": "2026-11-20T00:00:00Z"}]}]})

    external_id: str
    gpu_vendor: str | None = None
    form_factor: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    last_seen_at: datetime
    price_history: list[PricePoint]
