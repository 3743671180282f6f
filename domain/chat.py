"""The AI chat contract (FR-AI-1): the request, the constraints schema, and the answer.

`ChatConstraints` is the one schema for what a user wants: the deterministic extractor
(`domain.chat_extract`) produces it, the LLM is asked for JSON that validates against it
(`llm_schema()`), and a request body may carry it explicitly (explicit values win over both).
Prices and budgets are USD; budgets given in another currency are converted (`domain.fx`).
"""
from __future__ import annotations

import enum
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.gpus import GPUS, matching_gpus
from domain.search import CONTINENTS

PROMPT_MAX_CHARS = 4000

_Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._:/()+,\-]{0,63}$")]


class ChatPricing(str, enum.Enum):
    on_demand = "on_demand"
    spot = "spot"  # also matches offers sold as `interruptible`


class Interconnect(str, enum.Enum):
    nvlink = "nvlink"
    infiniband = "infiniband"


class ChatConstraints(BaseModel):
    """What the user asked for. Every field optional; an unset field does not constrain."""

    model_config = ConfigDict(extra="forbid")

    gpu_type: str | None = Field(None, max_length=64, description=(
        "a canonical GPU name from the catalog table (`H100-SXM`, `A100-80GB-PCIe`, `L4`) or a model family "
        "meaning every variant (`H100`, `A100 80GB`); any alias is accepted and canonicalized"))
    gpu_count: int | None = Field(None, ge=1, le=64, description="GPUs needed in one instance (at least)")
    min_gpu_memory_gb: float | None = Field(None, gt=0, le=2048, description="memory per GPU, GB (at least)")
    providers: list[_Name] = Field(default_factory=list, max_length=50, description="provider ids, any of")
    regions: list[_Name] = Field(default_factory=list, max_length=50, description=(
        "provider region names (`us-east-1`, `europe-west4`); a prefix such as `us-east` matches every region "
        "that starts with it"))
    countries: list[Annotated[str, Field(pattern=r"^[A-Za-z]{2}$")]] = Field(
        default_factory=list, max_length=50, description="ISO 3166-1 alpha-2 codes, any of")
    continents: list[Annotated[str, Field(pattern=r"^[A-Za-z]{2}$")]] = Field(
        default_factory=list, max_length=7, description="continent codes: " + ", ".join(CONTINENTS))
    pricing: ChatPricing | None = Field(None, description="on_demand, or spot (spot and interruptible offers)")
    max_price_per_hour: float | None = Field(None, gt=0, le=1_000_000, description="USD per hour, whole instance")
    max_total: float | None = Field(None, gt=0, le=100_000_000, description="USD for the whole duration")
    duration_hours: float | None = Field(None, gt=0, le=24 * 366, description="how long the instance is needed")
    interconnect: Interconnect | None = Field(None, description="nvlink (SXM/NVL boards) or infiniband")
    use_case: str | None = Field(None, max_length=80, description="what the GPUs are for, e.g. `fine-tune 70B`")

    @field_validator("gpu_type")
    @classmethod
    def _gpu(cls, v: str | None) -> str | None:
        if v is None:
            return None
        canonical = canonical_gpu(v)
        if canonical is None:
            raise ValueError(f"unknown GPU type {v!r}")
        return canonical

    @field_validator("countries", "continents")
    @classmethod
    def _upper(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(c.upper() for c in v))

    @field_validator("continents")
    @classmethod
    def _continent(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in CONTINENTS]
        if bad:
            raise ValueError(f"unknown continent {bad[0]!r}; one of {', '.join(CONTINENTS)}")
        return v

    @field_validator("providers", "regions")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(x.strip().lower() for x in v))

    def set_fields(self) -> dict[str, Any]:
        """The fields that constrain anything (unset and empty ones left out)."""
        return {k: v for k, v in self.model_dump(mode="json").items() if v not in (None, [])}


def canonical_gpu(text: str) -> str | None:
    """The constraint value for a GPU name: the canonical name when it denotes one model, the family's
    name (`H100`, `A100 80GB`) when it denotes several, None when it denotes none."""
    models = matching_gpus(text)
    if not models:
        return None
    if len(models) == 1:
        return models[0]
    label = " ".join(text.strip().upper().replace("-", " ").split())
    return re.sub(r"(\d)\s*G(?:IB)?\b", r"\1GB", label)  # "A100 80G" -> "A100 80GB"


def gpu_models(gpu_type: str) -> list[str]:
    """The canonical models a constraint value denotes."""
    return [gpu_type] if gpu_type in GPUS else matching_gpus(gpu_type)


class ChatRequest(BaseModel):
    """POST /ai/chat body (and the WebSocket `chat` message without its `type` and `id`)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=PROMPT_MAX_CHARS, description="the request in plain words")
    constraints: ChatConstraints | None = Field(None, description="explicit constraints; they win over the prompt")
    stream: bool = Field(False, description="answer as Server-Sent Events: the structured part, then summary tokens")

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must contain some text")
        return v


class Recommendation(BaseModel):
    offer_id: str
    provider: str
    gpu_type: str
    gpu_count: float
    region: str
    pricing: str
    price_per_hour: float = Field(description="USD per hour, whole instance")
    total_for_duration: float = Field(description="price_per_hour x duration_hours (USD)")
    last_updated: str = Field(description="when the price last changed (ISO 8601)")
    stale: bool = Field(False, description="the provider's data is older than the freshness limit or it is down")
    reason: str


class ChatForecast(BaseModel):
    hourly: float | None = None
    daily: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    degraded: bool = Field(False, description="no forecast could be had; the fields are null")


class Relaxation(BaseModel):
    """A limit to relax when nothing matches, with the nearest offers once it is relaxed."""

    limit: str = Field(description="the constraint field to relax")
    suggestion: str
    offers: list[Recommendation] = Field(default_factory=list)


_RESPONSE_EXAMPLE = {
    "constraints": {"gpu_type": "H100", "gpu_count": 8, "min_gpu_memory_gb": None, "providers": [], "regions": [],
                    "countries": [], "continents": ["EU"], "pricing": None, "max_price_per_hour": 25.0,
                    "max_total": None, "duration_hours": 72.0, "interconnect": None, "use_case": None},
    "assumptions": [],
    "recommendations": [{"offer_id": "3f6c2a0e-9b1d-4e57-8c3a-2d4f5e6a7b8c", "provider": "gcp",
                         "gpu_type": "H100-SXM", "gpu_count": 8.0, "region": "europe-north1", "pricing": "spot",
                         "price_per_hour": 15.25, "total_for_duration": 1098.03,
                         "last_updated": "2026-12-01T14:00:00Z", "stale": False,
                         "reason": "#1 by total cost: 8 x H100-SXM at 15.25 USD/h (spot) in europe-north1, "
                                   "1098.03 USD for 72 h"}],
    "relax": [], "forecast": {"hourly": None, "daily": None, "ci_low": None, "ci_high": None, "degraded": True},
    "iac": {"terraform": "resource \"google_compute_instance\" \"gpu\" { ... }"},
    "summary": "Best match: 8 x H100-SXM from gcp in europe-north1 at 15.25 USD/h (spot), 1098.03 USD for 72 h.",
    "follow_up": None, "engine": "local", "degraded": False, "degraded_reason": None,
}


class ChatResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_RESPONSE_EXAMPLE]})

    constraints: ChatConstraints
    assumptions: list[str] = Field(default_factory=list, description="what was inferred, stated plainly")
    recommendations: list[Recommendation] = Field(default_factory=list)
    relax: list[Relaxation] = Field(default_factory=list, description="set when nothing matches")
    forecast: ChatForecast | None = None
    iac: dict[str, str] = Field(default_factory=dict, description="{terraform: HCL} for the first recommendation")
    summary: str = ""
    follow_up: str | None = Field(None, description="one question when the request is too vague or contradictory")
    engine: str = Field(description="the LLM engine that served this answer: local, openai, vllm or none")
    degraded: bool = Field(False, description="the LLM was off, failed or ran past its deadline: extractor and "
                                               "templates only")
    degraded_reason: str | None = None
