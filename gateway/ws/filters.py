"""Subscription filters of the live price stream: the protocol's filter model and its per-update matching.

A filter matches an update when every field it sets matches; a list field matches any of its values. Every
word means what it means to `GET /providers`, decided by the same `domain/` rules: GPU words select through
`domain.gpu_alias.GpuSelection`, an update's region is placed with `domain.geo.place` (what ingestion stores
beside each offer), pricing words, country and continent codes and price caps are the field types and rules
of `domain.search`. tests/test_filter_agreement.py holds both paths to the same offers of the whole bundled
catalog.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.geo import place
from domain.gpu_alias import GpuSelection, denoted, name_keys
from domain.models import Pricing
from domain.search import (Amount, ContinentCode, CountryCode, Name, Price, PricingWord, RegionName, gpu_count_is,
                           within_price_cap)


class PriceFilter(BaseModel):
    """One subscription's filter (protocol v1). Every field is optional; an empty filter matches everything.

    The fields, their words and bounds are those of the search filters (`domain.search.Filters`); a field
    also accepts a single string for a one-item list.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu_type: tuple[Name, ...] | None = Field(None, min_length=1, max_length=20, description="GPU names or aliases")
    provider: tuple[Name, ...] | None = Field(None, min_length=1, max_length=50, description="provider ids")
    region: tuple[RegionName, ...] | None = Field(None, min_length=1, max_length=50,
                                                  description="provider region names")
    country: tuple[CountryCode, ...] | None = Field(None, min_length=1, max_length=50,
                                                    description="ISO 3166-1 alpha-2, placed from the region")
    continent: tuple[ContinentCode, ...] | None = Field(None, min_length=1, max_length=7,
                                                        description="AF, AN, AS, EU, NA, OC, SA")
    pricing: tuple[PricingWord, ...] | None = Field(None, min_length=1, max_length=3,
                                                    description="on_demand, spot or interruptible")
    max_price: Price | None = Field(None, description="new_price <= max_price (USD/hour, the whole instance)")
    gpu_count: Amount | None = Field(None, gt=0, description="exact GPUs per instance")

    @field_validator("gpu_type", "provider", "region", "country", "continent", "pricing", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("gpu_type")
    @classmethod
    def _known_gpus(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        unknown = [w for w in v or () if not denoted(w)]
        if unknown:  # search answers 422 for the same words
            raise ValueError(f"unknown GPU type {unknown[0]!r}")
        return v

    def compiled(self) -> "CompiledFilter":
        return CompiledFilter(self)


class CompiledFilter:
    """A PriceFilter prepared for the hot path: the GPU selection, lower-cased sets, a float price cap."""

    __slots__ = ("source", "gpus", "gpu_models", "gpu_folds", "families", "providers", "regions", "countries",
                 "continents", "pricing", "max_price", "gpu_count")

    def __init__(self, f: PriceFilter):
        self.source = f
        self.gpus = GpuSelection(f.gpu_type) if f.gpu_type else None
        # `GpuSelection.selects` unrolled on the update's precomputed model and folded name (hot path).
        self.gpu_models = self.gpus.models if self.gpus is not None else None
        self.gpu_folds = self.gpus.folds if self.gpus is not None else None
        # The fan-out's index keys: an update whose `UpdateView.families` shares none cannot match.
        self.families = self.gpus.keys() if self.gpus is not None else None
        self.providers = frozenset(p.lower() for p in f.provider) if f.provider else None
        self.regions = frozenset(r.lower() for r in f.region) if f.region else None
        self.countries = frozenset(f.country) if f.country else None
        self.continents = frozenset(f.continent) if f.continent else None
        self.pricing = frozenset(p.value for p in f.pricing) if f.pricing else None
        self.max_price = f.max_price
        self.gpu_count = f.gpu_count

    def gpu_matches(self, u: "UpdateView") -> bool:
        """Whether the update's GPU is one this filter names (True when it names none)."""
        return self.gpu_models is None or u.gpu_model in self.gpu_models or u.gpu_fold in self.gpu_folds

    def matches(self, u: "UpdateView") -> bool:
        if self.max_price is not None and not within_price_cap(u.price, self.max_price):
            return False
        return self.matches_shape(u)

    def matches_shape(self, u: "UpdateView") -> bool:
        """Every test but the price cap: the answer depends on `u.shape` alone (Fanout caches it per shape)."""
        if self.gpu_models is not None and not (u.gpu_model in self.gpu_models or u.gpu_fold in self.gpu_folds):
            return False
        if self.providers is not None and u.provider_l not in self.providers:
            return False
        if self.regions is not None and u.region_l not in self.regions:
            return False
        if self.countries is not None and u.country not in self.countries:
            return False
        if self.continents is not None and u.continent not in self.continents:
            return False
        if self.pricing is not None and u.pricing not in self.pricing:
            return False
        if self.gpu_count is not None and not gpu_count_is(u.gpu_count, self.gpu_count):
            return False
        return True


class UpdateView:
    """The fields of one price update that filters read, computed once per update."""

    __slots__ = ("gpu_type", "gpu_model", "gpu_fold", "families", "provider_l", "region_l", "country", "continent",
                 "pricing", "price", "gpu_count", "shape")

    def __init__(self, d: dict[str, Any]):
        self.gpu_type = str(d.get("gpu_type") or "")
        self.families = name_keys(self.gpu_type)
        self.gpu_model = self.families[0] if len(self.families) == 2 else None
        self.gpu_fold = self.families[-1]
        self.provider_l = str(d.get("provider") or "").lower()
        region = str(d.get("region") or "")
        self.region_l = region.lower()
        country, continent = d.get("country"), d.get("continent")
        if not country or not continent:
            gc, gk = place(region) if region else (None, None)
            country, continent = country or gc, continent or gk
        self.country = country.upper() if isinstance(country, str) else None
        self.continent = continent.upper() if isinstance(continent, str) else None
        self.pricing = str(d.get("pricing") or Pricing.on_demand.value)
        try:
            self.price = float(Decimal(str(d.get("new_price"))))
        except (InvalidOperation, ValueError, TypeError):
            self.price = None
        count = d.get("gpu_count")
        self.gpu_count = float(count) if isinstance(count, (int, float)) and not isinstance(count, bool) else None
        # What `CompiledFilter.matches_shape` reads: updates of one offer (or one GPU in one place) share it.
        self.shape = (self.gpu_type, self.provider_l, self.region_l, self.country, self.continent, self.pricing,
                      self.gpu_count)
