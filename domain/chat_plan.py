"""From constraints to an answer: the search queries to ask, ranking by total cost, what to relax when
nothing matches, when to ask back, and the template summary. Pure functions; the search itself is the
marketplace search (`GET /providers` rules in `domain.search`), asked through its service."""
from __future__ import annotations

import re
from typing import Any, Iterable
from urllib.parse import urlencode

from domain.chat import ChatConstraints, Recommendation, gpu_models
from domain.geo import AREA_PREFIXES
from domain.gpus import GPUS

_LINK_FORMS = ("SXM", "NVL", "Superchip")  # boards whose GPUs talk over NVLink
_STALE = re.compile(r"provider '([^']+)' data is stale")


def gpu_names(c: ChatConstraints) -> list[str]:
    """Canonical models that satisfy the GPU type and the interconnect (empty: any GPU)."""
    models = gpu_models(c.gpu_type) if c.gpu_type else []
    if c.interconnect is not None and c.interconnect.value == "nvlink":
        models = [m for m in (models or GPUS) if GPUS[m].form_factor in _LINK_FORMS]
    return models


def hourly_limit(c: ChatConstraints) -> float | None:
    """The per-hour price limit implied by the hourly and the total budget."""
    limits = [x for x in (c.max_price_per_hour,
                          c.max_total / c.duration_hours if c.max_total and c.duration_hours else None) if x]
    return round(min(limits), 6) if limits else None


def search_queries(c: ChatConstraints, page_size: int = 100) -> list[tuple[str, str | None]]:
    """Raw `GET /providers` query strings, one per kind of place asked for (places are OR-ed, search filters
    AND-ed), each with the region prefix its results must start with (None: no prefix filter)."""
    base: list[tuple[str, Any]] = [("sort", "price_asc"), ("page_size", page_size), ("availability", "up,degraded")]
    names = gpu_names(c)
    if names:
        base.append(("gpu_type", ",".join(names)))
    elif c.gpu_type:
        base.append(("gpu_type", c.gpu_type))
    if c.gpu_count:
        base.append(("min_gpu_count", c.gpu_count))
    if c.min_gpu_memory_gb:
        base.append(("min_gpu_memory_gb", c.min_gpu_memory_gb))
    if c.providers:
        base.append(("provider", ",".join(c.providers)))
    if c.pricing is not None:
        base.append(("pricing", "on_demand" if c.pricing.value == "on_demand" else "spot,interruptible"))
    limit = hourly_limit(c)
    if limit is not None:
        base.append(("max_price", limit))
    if c.interconnect is not None and c.interconnect.value == "infiniband":
        base.append(("q", "infiniband"))
    places: list[tuple[list[tuple[str, Any]], str | None]] = []
    exact = [r for r in c.regions if r not in AREA_PREFIXES]
    if exact:
        places.append(([("region", ",".join(exact))], None))
    for prefix in (r for r in c.regions if r in AREA_PREFIXES):
        places.append(([("country", AREA_PREFIXES[prefix])], prefix))
    if c.countries:
        places.append(([("country", ",".join(c.countries))], None))
    if c.continents:
        places.append(([("continent", ",".join(c.continents))], None))
    return [(urlencode(base + extra), prefix) for extra, prefix in (places or [([], None)])]


def stale_providers(warnings: Iterable[str]) -> set[str]:
    """Providers a search page's warnings call stale (down, or not synced within the freshness limit)."""
    return {m.group(1) for w in warnings for m in [_STALE.search(w)] if m}


def rank(items: Iterable[dict[str, Any]], c: ChatConstraints, stale: set[str], limit: int) -> list[Recommendation]:
    """The offers by total cost for the duration (cheapest first, ties by id), each with its reason."""
    hours = c.duration_hours or 1.0
    seen: set[str] = set()
    unique = []
    for it in items:
        if it["id"] not in seen:
            seen.add(it["id"])
            unique.append(it)
    unique.sort(key=lambda it: (float(it["price_per_hour"]) * hours, it["id"]))
    out = []
    for i, it in enumerate(unique[:limit]):
        price = float(it["price_per_hour"])
        is_stale = it["provider"] in stale
        reason = (f"#{i + 1} by total cost: {it['gpu_count']:g} x {it['gpu_type']} at {price:.4g} USD/h "
                  f"({it['pricing']}) in {it['region']}, {price * hours:.2f} USD for {hours:g} h")
        if is_stale:
            reason += "; price data is stale, check before booking"
        out.append(Recommendation(offer_id=it["id"], provider=it["provider"], gpu_type=it["gpu_type"],
                                  gpu_count=it["gpu_count"], region=it["region"], pricing=it["pricing"],
                                  price_per_hour=price, total_for_duration=round(price * hours, 4),
                                  last_updated=it["last_updated"], stale=is_stale, reason=reason))
    return out


_RELAX_ORDER = (
    ("regions", "look in other regions", {"regions": [], "countries": [], "continents": []}),
    ("max_price_per_hour", "allow a higher price", {"max_price_per_hour": None, "max_total": None}),
    ("pricing", "allow spot / interruptible offers", {"pricing": None}),
    ("providers", "allow other providers", {"providers": []}),
    ("interconnect", "drop the interconnect requirement", {"interconnect": None}),
    ("min_gpu_memory_gb", "accept less GPU memory", {"min_gpu_memory_gb": None}),
    ("gpu_count", "accept fewer GPUs per instance", {"gpu_count": None}),
    ("gpu_type", "accept another GPU model", {"gpu_type": None}),
)


def relaxations(c: ChatConstraints, most: int = 4) -> list[tuple[str, str, ChatConstraints]]:
    """(limit, suggestion, constraints without that limit) for the set limits, most likely culprits first."""
    out = []
    for name, suggestion, reset in _RELAX_ORDER:
        current = {k: getattr(c, k) for k in reset}
        if not any(v not in (None, []) for v in current.values()):
            continue
        if name == "pricing" and c.pricing is not None and c.pricing.value == "spot":
            continue  # spot already is the cheap end
        out.append((name, suggestion, c.model_copy(update=reset)))
    return out[:most]


def contradictions(c: ChatConstraints) -> list[str]:
    """Constraints that no offer can meet together (asked back, never an error)."""
    out = []
    if c.gpu_type:
        models = gpu_models(c.gpu_type)
        most = max(GPUS[m].memory_gb for m in models)
        if c.min_gpu_memory_gb and most < c.min_gpu_memory_gb:
            out.append(f"{c.gpu_type} has at most {most:g} GB per GPU, but {c.min_gpu_memory_gb:g} GB was asked")
        if c.interconnect is not None and c.interconnect.value == "nvlink" and not gpu_names(c):
            out.append(f"{c.gpu_type} has no NVLink (SXM/NVL) variant")
    return out


def follow_up(c: ChatConstraints, conflicts: list[str]) -> str | None:
    """One question back when the request is contradictory or says nothing about the GPU."""
    problems = conflicts + contradictions(c)
    if problems:
        return f"Your request conflicts: {'; '.join(problems)}. Which should I keep?"
    if not (c.gpu_type or c.min_gpu_memory_gb or c.use_case):
        return ("Which GPU do you need, or what will you run on it (for example: fine-tune a 13B model, serve "
                "Llama 3 8B), and for how long?")
    return None


def template_summary(c: ChatConstraints, recs: list[Recommendation], relax_found: list[tuple[str, str, float]],
                     forecast_hourly: float | None, follow: str | None) -> str:
    """The summary built from facts only (the answer when the LLM is off, late or down)."""
    if follow and not recs:
        return follow
    parts = []
    hours = c.duration_hours or 1.0
    if recs:
        r = recs[0]
        parts.append(f"Best match: {r.gpu_count:g} x {r.gpu_type} from {r.provider} in {r.region} at "
                     f"{r.price_per_hour:.4g} USD/h ({r.pricing}), {r.total_for_duration:.2f} USD for {hours:g} h.")
        if r.stale:
            parts.append("Its price data is stale; check it before booking.")
        if len(recs) > 1:
            parts.append(f"{len(recs) - 1} more option{'s' if len(recs) > 2 else ''} follow, up to "
                         f"{recs[-1].price_per_hour:.4g} USD/h.")
    elif relax_found:
        parts.append("No offer meets all your limits.")
        for limit, suggestion, price in relax_found[:2]:
            parts.append(f"To {suggestion} ({limit}) gives offers from {price:.4g} USD/h.")
    else:
        parts.append("No offer matches, even with one limit relaxed.")
    if forecast_hourly is not None:
        parts.append(f"The price forecast for this GPU is {forecast_hourly:.4g} USD/h.")
    return " ".join(parts)
