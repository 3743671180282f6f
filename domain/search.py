"""Marketplace search: the query model (filters, sort, page), its normalization and the text tokenizer.

Pure logic shared by the HTTP router, the in-memory index and the SQL cross-checks in the tests.
A query arrives as the raw URL query string; `parse_query` validates it and raises `QueryError` naming
every bad field, and `SearchQuery.cache_key()` is the same for every spelling of the same filters.
"""
from __future__ import annotations

import enum
import hashlib
import re
from typing import Annotated, Any, Iterable
from urllib.parse import parse_qsl

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from domain.geo import is_region
from domain.models import Availability, Pricing, ProviderOffer
from domain.pagination import CURSOR_DESCRIPTION, CURSOR_PATTERN, CursorError, decode_cursor, encode_cursor

MAX_PAGE_SIZE = 100
EXPORT_MAX_ROWS = 10_000
CONTINENTS = ("AF", "AN", "AS", "EU", "NA", "OC", "SA")
# Parameters that may be repeated (`?gpu_type=H100&gpu_type=A100`) or comma-separated (`?gpu_type=H100,A100`).
MULTI = ("gpu_type", "provider", "region", "country", "continent", "pricing", "availability", "tags")
# The fields of one search item, in output order: `ProviderOffer`'s (CSV export uses the same columns).
ITEM_FIELDS = tuple(ProviderOffer.model_fields)

_NAME = r"^[A-Za-z0-9][A-Za-z0-9 ._+/:()\-]{0,127}$"
_WORD = re.compile(r"[^\W_]+", re.UNICODE)

Name = Annotated[str, Field(pattern=_NAME, max_length=128)]
Price = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]
Amount = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]


# ---- the filter words search and the price stream share (one meaning each) ------------------------------
def pricing_word(value: Any) -> Any:
    """'spot', 'On-Demand', 'on demand', 'ON_DEMAND' -> the `Pricing` value; any other word is left to the enum
    to refuse."""
    return re.sub(r"[\s\-]+", "_", value.strip().lower()) if isinstance(value, str) else value


def _continent_code(value: str) -> str:
    code = value.upper()
    if code not in CONTINENTS:
        raise ValueError(f"unknown continent {code!r}; one of {', '.join(CONTINENTS)}")
    return code


PricingWord = Annotated[Pricing, BeforeValidator(pricing_word)]
CountryCode = Annotated[str, Field(pattern=r"^[A-Za-z]{2}$"), AfterValidator(str.upper)]
ContinentCode = Annotated[str, Field(pattern=r"^[A-Za-z]{2}$"), AfterValidator(_continent_code)]
# Any printable text: provider regions include Vast.ai geolocations such as 'Texas, US' and 'Türkiye, TR'.
RegionName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$")]


def within_price_cap(price: float | None, cap: float) -> bool:
    """`max_price`: the whole instance's price per hour is at most the cap; an unknown price never matches.
    (`OfferIndex` applies the same comparison to a whole column at once.)"""
    return price is not None and price <= cap


def gpu_count_is(count: float | None, wanted: float) -> bool:
    """`gpu_count`: exactly this many GPUs per instance; an unknown count never matches."""
    return count is not None and count == wanted


class Sort(str, enum.Enum):
    price_asc = "price_asc"
    price_desc = "price_desc"
    price_per_gpu_asc = "price_per_gpu_asc"
    updated_desc = "updated_desc"


class QueryError(ValueError):
    """A query parameter is invalid; `details` is a list of {field, message} for the 422 error body."""

    def __init__(self, details: list[dict[str, str]]):
        fields = ", ".join(dict.fromkeys(d["field"] for d in details))
        super().__init__(f"invalid query: {fields}")
        self.details = details


class Filters(BaseModel):
    """The filters shared by search and export (every one optional; lists are OR within, AND across)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu_type: list[Name] = Field(default_factory=list, max_length=20,
                                 description="canonical GPU name or any alias; several are OR-ed")
    gpu_count: Amount | None = Field(None, gt=0, description="exact GPUs per instance")
    min_gpu_count: Amount | None = Field(None, description="at least this many GPUs per instance")
    min_gpu_memory_gb: Amount | None = Field(None, description="at least this much memory per GPU (GB)")
    provider: list[Name] = Field(default_factory=list, max_length=50, description="provider ids")
    region: list[RegionName] = Field(default_factory=list, max_length=50, description="provider region names")
    country: list[CountryCode] = Field(default_factory=list, max_length=50,
                                       description="ISO 3166-1 alpha-2 country codes")
    continent: list[ContinentCode] = Field(default_factory=list, max_length=7,
                                           description="continent codes: " + ", ".join(CONTINENTS))
    max_price: Price | None = Field(None, description="maximum price of the whole instance per hour")
    max_price_per_gpu: Price | None = Field(None, description="maximum price per GPU-hour")
    pricing: list[PricingWord] = Field(default_factory=list, description="on_demand, spot or interruptible")
    availability: list[Availability] = Field(default_factory=list, description="up, degraded or down")
    min_vcpu: Amount | None = Field(None, description="at least this many vCPUs")
    min_memory_gb: Amount | None = Field(None, description="at least this much instance memory (GB)")
    tags: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._:/+\-=]{0,63}$")]] = Field(
        default_factory=list, max_length=20, description="every tag must be present")
    q: str | None = Field(None, min_length=1, max_length=200, description="full-text words on name, GPU and tags")

    @field_validator("q")
    @classmethod
    def _q(cls, v: str | None) -> str | None:
        if v is not None and not text_terms(v):
            raise ValueError("must contain at least one word")
        return v

    def active(self) -> dict[str, Any]:
        """The filters actually set, in a canonical form (sorted, de-duplicated lists)."""
        out: dict[str, Any] = {}
        for name, value in self:
            if value is None or value == []:
                continue
            if isinstance(value, list):
                value = sorted({v.value if isinstance(v, enum.Enum) else v for v in value})
            out[name] = value
        return out


class SearchQuery(Filters):
    """Search filters, sort and one page: `limit` + `cursor` (the API's convention) or `page` + `page_size`."""

    sort: Sort = Field(Sort.price_asc, description="price_asc, price_desc, price_per_gpu_asc or updated_desc")
    limit: int | None = Field(None, ge=1, le=MAX_PAGE_SIZE, description=f"items per page (at most {MAX_PAGE_SIZE}); "
                              "same as page_size")
    cursor: str | None = Field(None, pattern=CURSOR_PATTERN, description=CURSOR_DESCRIPTION)
    page: int = Field(1, ge=1, le=100_000, description="1-based page number (instead of cursor)")
    page_size: int = Field(20, ge=1, le=MAX_PAGE_SIZE, description=f"items per page (at most {MAX_PAGE_SIZE})")

    @model_validator(mode="after")
    def _one_paging_style(self) -> "SearchQuery":
        if self.cursor is not None and "page" in self.model_fields_set:
            raise ValueError("give either cursor or page, not both")
        if self.limit is not None and "page_size" in self.model_fields_set:
            raise ValueError("give either limit or page_size, not both")
        return self

    @property
    def size(self) -> int:
        return self.limit if self.limit is not None else self.page_size

    @property
    def offset(self) -> int:
        """Rows to skip; raises QueryError for a cursor this route did not issue."""
        if self.cursor is None:
            return (self.page - 1) * self.size
        try:
            offset = decode_cursor(self.cursor, ("o",))["o"]
        except CursorError as exc:
            raise QueryError([{"field": "cursor", "message": str(exc)}]) from None
        if not isinstance(offset, int) or not 0 <= offset <= 100_000 * MAX_PAGE_SIZE:
            raise QueryError([{"field": "cursor", "message": "not a cursor issued by this route"}])
        return offset

    def next_cursor(self, total: int) -> str | None:
        """The cursor of the page after this one, None when this one is the last."""
        nxt = self.offset + self.size
        return encode_cursor({"o": nxt}) if nxt < total else None

    def cache_key(self) -> str:
        """A short key equal for every spelling of the same query (order of params, case of enums, lists)."""
        paging = ("sort", "page", "page_size", "limit", "cursor")
        parts = [f"{k}={v}" for k, v in sorted(self.active().items()) if k not in paging]
        parts += [f"sort={self.sort.value}", f"offset={self.offset}", f"size={self.size}"]
        return hashlib.blake2b("&".join(parts).encode(), digest_size=12).hexdigest()


class ExportQuery(Filters):
    format: str = Field("csv", pattern=r"^(csv|json)$", description="csv or json")
    sort: Sort = Field(Sort.price_asc, description="as for search")


def list_items(key: str, value: str) -> list[str]:
    """The items of one comma-separated list parameter. A region that is itself a Vast.ai geolocation
    ('Texas, US', ', US') stays one item unless one of its pieces is a region of its own."""
    items = [p.strip() for p in value.split(",") if p.strip()]
    if key == "region" and "," in value and is_region(value) and not any(is_region(p) for p in items):
        return [value.strip()]
    return items


def _collect(raw: bytes | str) -> dict[str, Any]:
    if isinstance(raw, bytes):
        raw = raw.decode("latin-1")
    data: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        if key == "region":
            data.setdefault(key, []).extend(list_items(key, value))
        elif key in MULTI:
            data.setdefault(key, []).extend(p.strip() for p in value.split(",") if p.strip())
        elif key in data:
            raise QueryError([{"field": key, "message": "given more than once"}])
        else:
            data[key] = value
    return data


def parse_query(raw: bytes | str, model: type[Filters] = SearchQuery) -> Any:
    """Validate a raw query string into `model`; raise QueryError naming each bad field."""
    data = _collect(raw)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if not isinstance(p, int)]
            field = loc[0] if loc else "query"
            msg = err.get("msg", "invalid")
            if err.get("type") == "extra_forbidden":
                msg = "unknown query parameter"
            details.append({"field": field, "message": msg})
        raise QueryError(details) from None


def text_terms(q: str) -> list[str]:
    """The words of a full-text query: lower-cased runs of letters and digits, all required.

    Offers are indexed with PostgreSQL's `simple` lexemes of name, GPU type and tags plus the same
    letter/digit runs of each lexeme, so `us-east-1`, `a2-highgpu-1g` and `A100 80GB` find what
    `plainto_tsquery('simple', ...)` finds.
    """
    return list(dict.fromkeys(m.lower() for m in _WORD.findall(q)))


def document_terms(lexemes: Iterable[str]) -> set[str]:
    """Search terms of one offer from its PostgreSQL lexemes (each lexeme and its letter/digit runs)."""
    out: set[str] = set()
    for lex in lexemes:
        out.add(lex)
        out.update(m.lower() for m in _WORD.findall(lex))
    return out


def query_parameters_openapi(model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI `parameters` for a query model, since the handlers parse the raw query string themselves."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items() if k != "title"}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = inline(prop)
        desc = prop.pop("description", None)
        p: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": prop}
        if desc:
            p["description"] = desc
        if name in MULTI:
            p["explode"] = True
        params.append(p)
    return params
