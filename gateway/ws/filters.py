"""Subscription filters of the live price stream: validation, GPU-alias and geography matching (pure logic).

A filter matches an update when every field it sets matches; a list field matches any of its values.
GPU names go through `canonical_gpu` (the project's `domain.gpus` when present), so "H100", "h100-sxm"
and "H100_80GB_SXM5" select the same family.
"""
from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.geo import locate
from domain.gpus import matching_gpus
from domain.models import Pricing

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _fallback_canonical(name: str) -> str:
    return "-".join(t for t in _NON_ALNUM.split(name.lower()) if t)


def _load_canonical() -> Callable[[str], str]:
    """`domain.gpus.canonical_gpu` when the catalog module exists, else a case/punctuation-insensitive form."""
    try:
        from domain.gpus import canonical_gpu  # type: ignore[import-not-found]
    except Exception:  # the module is optional: the fallback keeps the stream working without it
        return _fallback_canonical

    def canon(name: str) -> str:
        try:
            value = canonical_gpu(name)
        except Exception:
            value = None
        return _fallback_canonical(str(value) if value else name)

    return canon


canonical_gpu: Callable[[str], str] = _load_canonical()


def gpu_tokens(name: str) -> list[str]:
    return [t for t in canonical_gpu(name).split("-") if t]


def gpu_family(name: str) -> str:
    """The model token ("h100", "a100", "mi300x"): the index key of the fan-out."""
    toks = gpu_tokens(name)
    return toks[0] if toks else ""


def gpu_matches(wanted_tokens: tuple[str, ...], gpu_type: str) -> bool:
    """The first token (the model) must be equal; each further wanted token must start some token of the name.

    "H100" matches every H100 variant; "H100 SXM" matches "H100_80GB_SXM5" but not "H100 PCIe"; "A10" does not
    match "A100".
    """
    return tokens_match(wanted_tokens, tuple(gpu_tokens(gpu_type)))


def tokens_match(wanted_tokens: tuple[str, ...], toks: tuple[str, ...]) -> bool:
    if not toks or not wanted_tokens or toks[0] != wanted_tokens[0]:
        return False
    for w in wanted_tokens[1:]:
        if not any(t.startswith(w) for t in toks[1:]):
            return False
    return True


# Region -> (country, continent) for the region names providers use; unknown regions have no geography.
_REGION_PREFIXES: list[tuple[str, str | None, str]] = [
    ("northamerica-northeast", "CA", "NA"), ("ca-", "CA", "NA"), ("canada", "CA", "NA"),
    ("us", "US", "NA"), ("northamerica", "US", "NA"), ("southamerica", None, "SA"), ("sa-east", "BR", "SA"),
    ("brazil", "BR", "SA"), ("europe-west2", "GB", "EU"), ("uk", "GB", "EU"), ("eu-west-2", "GB", "EU"),
    ("europe-west3", "DE", "EU"), ("eu-central", "DE", "EU"), ("germany", "DE", "EU"), ("europe-west9", "FR", "EU"),
    ("eu-west-3", "FR", "EU"), ("france", "FR", "EU"), ("europe-west4", "NL", "EU"), ("eu-north", "SE", "EU"),
    ("norway", "NO", "EU"), ("finland", "FI", "EU"), ("iceland", "IS", "EU"),
    ("eu", None, "EU"), ("europe", None, "EU"), ("asia-northeast1", "JP", "AS"), ("ap-northeast-1", "JP", "AS"),
    ("japan", "JP", "AS"), ("ap-northeast-2", "KR", "AS"), ("asia-south", "IN", "AS"), ("ap-south", "IN", "AS"),
    ("india", "IN", "AS"), ("asia-southeast1", "SG", "AS"), ("ap-southeast-1", "SG", "AS"), ("singapore", "SG", "AS"),
    ("australia", "AU", "OC"), ("ap-southeast-2", "AU", "OC"), ("asia", None, "AS"), ("ap-", None, "AS"),
    ("me-", None, "AS"), ("af-", "ZA", "AF"),
]
_COUNTRY_CONTINENT = {"US": "NA", "CA": "NA", "MX": "NA", "BR": "SA", "GB": "EU", "DE": "EU", "FR": "EU", "NL": "EU",
                      "SE": "EU", "NO": "EU", "FI": "EU", "IS": "EU", "ES": "EU", "IT": "EU", "PL": "EU", "JP": "AS",
                      "KR": "AS", "IN": "AS", "SG": "AS", "AU": "OC", "ZA": "AF"}


def region_geo(region: str) -> tuple[str | None, str | None]:
    """(country, continent) derived from a region name, e.g. "us-east-1" -> ("US", "NA"); unknown -> (None, None)."""
    r = region.strip().lower()
    head = re.split(r"[-_ ]", r, maxsplit=1)[0].upper()
    if len(head) == 2 and head in _COUNTRY_CONTINENT and head not in ("EU",):  # "US-TX", "FR", "NO-1"
        return head, _COUNTRY_CONTINENT[head]
    for prefix, country, continent in _REGION_PREFIXES:
        if r.startswith(prefix):
            return country, continent
    return None, None


@functools.lru_cache(maxsize=4096)
def _geo(region: str) -> tuple[str | None, str | None]:
    """The catalog's own region table (`domain.geo`) first, then the prefix rules above."""
    try:
        country, continent = locate(region)
        if continent:
            return country, continent
    except ValueError:
        pass
    return region_geo(region)


def _fold(name: str) -> str:
    return _NON_ALNUM.sub("", name.lower())


def _str_list(v: Any) -> Any:
    if isinstance(v, str):
        return [v]
    return v


class PriceFilter(BaseModel):
    """One subscription's filter (protocol v1). Every field is optional; an empty filter matches everything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu_type: tuple[str, ...] | None = Field(None, max_length=32, description="GPU names or aliases")
    provider: tuple[str, ...] | None = Field(None, max_length=64)
    region: tuple[str, ...] | None = Field(None, max_length=64)
    country: tuple[str, ...] | None = Field(None, max_length=64, description="ISO 3166 alpha-2, from the region")
    continent: tuple[str, ...] | None = Field(None, max_length=8, description="NA, SA, EU, AS, OC, AF")
    pricing: tuple[Pricing, ...] | None = Field(None, max_length=3)
    max_price: Decimal | None = Field(None, gt=0, description="new_price <= max_price (USD/hour)")

    @field_validator("gpu_type", "provider", "region", "country", "continent", "pricing", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return _str_list(v)

    @field_validator("gpu_type", "provider", "region", "country", "continent")
    @classmethod
    def _nonempty(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is not None:
            if not v or any(not s.strip() or len(s) > 128 for s in v):
                raise ValueError("must be a non-empty string or list of 1-128 character strings")
        return v

    def compiled(self) -> "CompiledFilter":
        return CompiledFilter(self)


# GPU names one filter remembers its answer for. The GPU test is the costly one (alias set, then tokens) and
# depends on the name alone, while a feed carries few distinct names: with 10,000 subscriptions each update
# visits hundreds of filters of its family, so the answer is looked up, not recomputed (ingest CPU per update
# 295 -> 123 us in benchmarks/ws_capacity.py).
_GPU_MEMO_MAX = 256


class CompiledFilter:
    """A PriceFilter prepared for the hot path: lower-cased sets, GPU tokens, a float price cap."""

    __slots__ = ("source", "gpus", "gpu_names", "families", "providers", "regions", "countries", "continents", "pricing",
                 "max_price", "_gpu_memo")

    def __init__(self, f: PriceFilter):
        self.source = f
        self.gpus = tuple(tuple(gpu_tokens(g)) for g in f.gpu_type) if f.gpu_type else None
        # Aliases through the canonical GPU table ("NVIDIA A100-SXM4-80GB", "H100" = every H100 variant);
        # the token match stays for names the table does not know.
        canon = [n for g in f.gpu_type for n in matching_gpus(g)] if f.gpu_type else []
        self.gpu_names = frozenset(_fold(n) for n in canon)
        self.families = (frozenset(g[0] for g in self.gpus if g) | frozenset(gpu_family(n) for n in canon)) \
            if self.gpus else None
        self.providers = frozenset(p.lower() for p in f.provider) if f.provider else None
        self.regions = frozenset(r.lower() for r in f.region) if f.region else None
        self.countries = frozenset(c.upper() for c in f.country) if f.country else None
        self.continents = frozenset(c.upper() for c in f.continent) if f.continent else None
        self.pricing = frozenset(p.value for p in f.pricing) if f.pricing else None
        self.max_price = float(f.max_price) if f.max_price is not None else None
        self._gpu_memo: dict[str, bool] = {}

    def gpu_matches(self, u: "UpdateView") -> bool:
        """Whether the update's GPU is one this filter names (True when it names none)."""
        if self.gpus is None or u.gpu_fold in self.gpu_names:
            return True
        toks = u.gpu_toks
        return any(tokens_match(g, toks) for g in self.gpus)

    def matches(self, u: "UpdateView") -> bool:
        # cheapest test first
        if self.max_price is not None and (u.price is None or u.price > self.max_price):
            return False
        return self.matches_shape(u)

    def matches_shape(self, u: "UpdateView") -> bool:
        """Every test but the price cap: the answer depends on `u.shape` alone (Fanout caches it per shape)."""
        if self.gpus is not None:
            hit = self._gpu_memo.get(u.gpu_type)
            if hit is None:
                hit = self.gpu_matches(u)
                if len(self._gpu_memo) >= _GPU_MEMO_MAX:
                    self._gpu_memo.clear()
                self._gpu_memo[u.gpu_type] = hit
            if not hit:
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
        return True


class UpdateView:
    """The fields of one price update that filters read, computed once per update."""

    __slots__ = ("gpu_type", "gpu_fold", "gpu_toks", "family", "provider_l", "region_l", "country", "continent", "pricing",
                 "price", "shape")

    def __init__(self, d: dict[str, Any]):
        self.gpu_type = str(d.get("gpu_type") or "")
        self.gpu_fold = _fold(self.gpu_type)
        self.gpu_toks = tuple(gpu_tokens(self.gpu_type))
        self.family = self.gpu_toks[0] if self.gpu_toks else ""
        self.provider_l = str(d.get("provider") or "").lower()
        region = str(d.get("region") or "")
        self.region_l = region.lower()
        country, continent = d.get("country"), d.get("continent")
        if not country or not continent:
            gc, gk = _geo(region)
            country, continent = country or gc, continent or gk
        self.country = country.upper() if isinstance(country, str) else None
        self.continent = continent.upper() if isinstance(continent, str) else None
        self.pricing = str(d.get("pricing") or Pricing.on_demand.value)
        try:
            self.price = float(Decimal(str(d.get("new_price"))))
        except (InvalidOperation, ValueError, TypeError):
            self.price = None
        # What `CompiledFilter.matches_shape` reads: updates of one offer (or one GPU in one place) share it.
        self.shape = (self.gpu_type, self.provider_l, self.region_l, self.country, self.continent, self.pricing)
