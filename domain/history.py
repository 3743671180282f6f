"""Price history queries: by GPU over time (buckets with min/median/max) and of one offer (keyset pages).

Pure models and rules; the SQL is `cluster.repositories.price_history`. History is a change log: the
ingestion records a point when an offer's price or availability changes (and the GCP backfill records
each published change since 2022), so a bucket's statistics are over the points recorded in it, and a
bucket in which nothing changed has no entry.
"""
from __future__ import annotations

import enum
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.models import Availability, Pricing
from domain.pagination import CURSOR_DESCRIPTION, CURSOR_PATTERN, CursorError, decode_cursor, encode_cursor

MAX_HISTORY_PAGE = 1000


class Bucket(str, enum.Enum):
    day = "day"
    week = "week"


# The widest range one request may cover, per bucket size (bounds the answer to ~400 buckets per series).
MAX_SPAN = {Bucket.day: timedelta(days=400), Bucket.week: timedelta(days=7 * 530)}
DEFAULT_SPAN = {Bucket.day: timedelta(days=30), Bucket.week: timedelta(days=365)}


def _utc(v: datetime | None) -> datetime | None:
    if v is not None and v.tzinfo is None:
        return v.replace(tzinfo=timezone.utc)
    return v


class _Range(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: datetime | None = Field(None, alias="from", description="start (inclusive), ISO 8601; naive is UTC")
    to: datetime | None = Field(None, description="end (exclusive), ISO 8601; default now")

    @field_validator("from_", "to")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        return _utc(v)


class GpuHistoryQuery(_Range):
    """GET /prices/history."""

    gpu_type: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._+/:()\-]{0,127}$",
                          description="a GPU model or alias; as in search, `H100` means every H100 variant")
    bucket: Bucket = Field(Bucket.day, description="day or week (weeks start on Monday, UTC)")
    provider: str | None = Field(None, pattern=r"^[a-z0-9_\-]{1,64}$", description="only this provider")
    pricing: Pricing | None = Field(None, description="only this pricing model")

    @model_validator(mode="after")
    def _span(self) -> "GpuHistoryQuery":
        to = self.to or datetime.now(timezone.utc)
        start = self.from_ or to - DEFAULT_SPAN[self.bucket]
        if start >= to:
            raise ValueError("`from` must be before `to`")
        if to - start > MAX_SPAN[self.bucket]:
            raise ValueError(f"at most {MAX_SPAN[self.bucket].days} days per request with bucket={self.bucket.value}")
        self.from_, self.to = start, to
        return self


class OfferHistoryQuery(_Range):
    """GET /providers/{id}/history: newest first, keyset pages."""

    limit: int = Field(100, ge=1, le=MAX_HISTORY_PAGE, description=f"points per page (at most {MAX_HISTORY_PAGE})")
    cursor: str | None = Field(None, pattern=CURSOR_PATTERN, description=CURSOR_DESCRIPTION)

    @model_validator(mode="after")
    def _order(self) -> "OfferHistoryQuery":
        if self.from_ is not None and self.to is not None and self.from_ >= self.to:
            raise ValueError("`from` must be before `to`")
        return self

    def position(self) -> tuple[datetime, int] | None:
        """The keyset position (recorded_at, id) after which the page starts; raises CursorError."""
        if self.cursor is None:
            return None
        pos = decode_cursor(self.cursor, ("t", "id"))
        try:
            return datetime.fromisoformat(pos["t"]), int(pos["id"])
        except (TypeError, ValueError):
            raise CursorError("not a cursor issued by this route") from None


def history_cursor(recorded_at: datetime, point_id: int) -> str:
    return encode_cursor({"t": recorded_at.isoformat(), "id": point_id})


class BucketStats(BaseModel):
    bucket_start: datetime
    min: float
    median: float
    max: float
    samples: int = Field(description="price points recorded in the bucket")


class PriceSeries(BaseModel):
    provider: str
    region: str
    pricing: Pricing
    points: list[BucketStats]


class GpuHistory(BaseModel):
    """GET /prices/history: one series per (provider, region, pricing), buckets oldest first."""

    model_config = ConfigDict(populate_by_name=True, json_schema_extra={"examples": [{
        "gpu_type": "H100", "gpus": ["H100-SXM", "H100-PCIe", "H100-NVL"], "bucket": "week",
        "from": "2025-01-06T00:00:00Z", "to": "2025-02-03T00:00:00Z", "series": [{
            "provider": "gcp", "region": "europe-west4", "pricing": "spot", "points": [
                {"bucket_start": "2025-01-13T00:00:00Z", "min": 2.25, "median": 2.31, "max": 2.4, "samples": 3}]}]}]})

    gpu_type: str
    gpus: list[str] = Field(description="the canonical models the GPU filter denotes")
    bucket: Bucket
    from_: datetime = Field(alias="from")
    to: datetime
    series: list[PriceSeries]


class HistoryPoint(BaseModel):
    price_per_hour: float
    availability: Availability
    recorded_at: datetime


class OfferHistoryPage(BaseModel):
    """GET /providers/{id}/history: one keyset page, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "offer_id": "5b8e2f4c-1d3a-4e6b-8c9d-0a1b2c3d4e5f", "items": [
            {"price_per_hour": 11.06, "availability": "up", "recorded_at": "2025-11-06T00:00:00Z"}],
        "next_cursor": "eyJpZCI6MTIsInQiOiIyMDI1LTExLTA2VDAwOjAwOjAwKzAwOjAwIn0"}]})

    offer_id: str
    items: list[HistoryPoint]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page; null on the last page")


def group_series(rows: list[dict[str, Any]]) -> list[PriceSeries]:
    """Rows (provider, region, pricing, bucket_start, min, median, max, samples) sorted by series then bucket."""
    out: list[PriceSeries] = []
    key = None
    for r in rows:
        k = (r["provider"], r["region"], r["pricing"])
        if k != key:
            out.append(PriceSeries(provider=k[0], region=k[1], pricing=k[2], points=[]))
            key = k
        out[-1].points.append(BucketStats(bucket_start=r["bucket_start"], min=r["min"], median=r["median"],
                                          max=r["max"], samples=r["samples"]))
    return out
