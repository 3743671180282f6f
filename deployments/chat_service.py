"""The chat answer: extract, let the LLM fill gaps, search real offers, rank, forecast, Terraform, summary.

`ChatService.events(request)` yields the answer as events: first `result` (everything but the summary),
then `token` pieces of the summary, then `done`. `answer()` collects them into one `ChatResponse`.
The LLM never decides a number: constraints it fills are validated against the schema and only used
where the extractor found nothing; recommendations come from the search index only. Every LLM call runs
under the answer's deadline; past it (or with the engine down) the answer is the extractor's and the
templates', with `degraded` set. The prompt is never logged, only its length and a hash.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any, AsyncIterator, Awaitable, Callable

from cluster.logs import get_logger
from cluster.settings import Settings
from deployments.llm_engines import Engine, EngineError
from domain import chat_plan as plan
from domain.chat import ChatConstraints, ChatForecast, ChatRequest, ChatResponse, Recommendation, Relaxation
from domain.chat_extract import extract
from domain.iac import terraform

log = get_logger("chat")
SearchFn = Callable[[bytes], Awaitable[Any]]  # raw query -> Reply (deployments.search_service)
DetailFn = Callable[[str], Awaitable[Any]]
_FILLABLE = ("gpu_type", "gpu_count", "min_gpu_memory_gb", "pricing", "max_price_per_hour", "max_total",
             "duration_hours", "use_case")


class SearchUnavailable(RuntimeError):
    """The search index could not answer (loading, or its deployment is down)."""


def prompt_fingerprint(prompt: str) -> dict[str, Any]:
    """What may be logged about a prompt: its length and a short hash, never the text."""
    return {"prompt_chars": len(prompt), "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest()[:16]}


def _fill_schema(missing: list[str]) -> dict[str, Any]:
    """The JSON schema the LLM must follow: only the fields still missing, as plain types."""
    full = ChatConstraints.model_json_schema()["properties"]
    props = {}
    for name in missing:
        p = full[name]
        kind = next((a for a in p.get("anyOf", [p]) if a.get("type") != "null"), {})
        if "$ref" in kind or name == "pricing":
            props[name] = {"type": "string", "enum": ["on_demand", "spot"]}
        else:
            props[name] = {"type": kind.get("type", "string")}
    return {"type": "object", "properties": props, "additionalProperties": False}


class ChatService:
    def __init__(self, settings: Settings, search: SearchFn, detail: DetailFn | None = None,
                 forecast: Any = None, engine: Engine | None = None, providers: list[str] | None = None,
                 engine_error: str | None = None):
        self.settings = settings
        self.search, self.detail, self.forecast = search, detail, forecast
        self.engine = engine
        self.engine_error = engine_error  # why there is no engine, when one was configured
        self.providers = providers or []

    @property
    def engine_name(self) -> str:
        return self.engine.name if self.engine is not None else "none"

    async def answer(self, req: ChatRequest) -> ChatResponse:
        result: dict[str, Any] = {}
        async for kind, data in self.events(req):
            if kind == "result":
                result = data
            elif kind == "done":
                result.update(summary=data["summary"], degraded=data["degraded"], degraded_reason=data["degraded_reason"])
        return ChatResponse.model_validate(result)

    async def events(self, req: ChatRequest) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        t0 = time.monotonic()
        deadline = t0 + self.settings.chat_deadline_s
        ex = extract(req.prompt, self.providers, self.settings.chat_fx_usd)
        degraded: str | None = None if self.engine is not None else (self.engine_error or "llm_off")
        constraints = ex.constraints
        if self.engine is not None and ex.unparsed and [f for f in _FILLABLE if f not in ex.found]:
            constraints, degraded = await self._llm_fill(req.prompt, ex.constraints, ex.found, ex.assumptions, deadline)
        constraints = self._apply_explicit(constraints, req.constraints, ex.assumptions)
        follow = plan.follow_up(constraints, ex.conflicts)
        recs: list[Recommendation] = []
        relax: list[Relaxation] = []
        if follow is None:
            recs = await self._search(constraints)
            if not recs:
                relax = await self._relax(constraints)
                follow = (f"Nothing matches all your limits. Shall I {relax[0].suggestion}?" if relax
                          else "Nothing matches, even with one limit relaxed. Which limit can change?")
            if constraints.duration_hours is None:
                ex.assumptions.append("no duration given: totals are for 1 hour")
        forecast, iac = await asyncio.gather(self._forecast(constraints, recs), self._iac(recs))
        resp = ChatResponse(constraints=constraints, assumptions=ex.assumptions, recommendations=recs, relax=relax,
                            forecast=forecast, iac=iac, follow_up=follow, engine=self.engine_name,
                            degraded=degraded is not None, degraded_reason=degraded)
        template = plan.template_summary(constraints, recs, [(r.limit, r.suggestion, r.offers[0].price_per_hour)
                                                              for r in relax if r.offers],
                                         forecast.hourly if forecast else None, follow)
        yield "result", resp.model_dump(mode="json", exclude={"summary"})
        summary = template
        for piece in _words(template):
            yield "token", {"text": piece}
        if degraded is None and recs and self.settings.chat_summary_max_tokens > 0:
            extra = []
            try:
                async for piece in self._llm_summary(req.prompt, recs[0], deadline):
                    if not extra:
                        piece = " " + piece.lstrip()
                    extra.append(piece)
                    yield "token", {"text": piece}
            except (EngineError, asyncio.TimeoutError) as exc:
                degraded = "llm_deadline" if isinstance(exc, asyncio.TimeoutError) else "llm_error"
            summary += "".join(extra)
        log.info("chat answered", extra={**prompt_fingerprint(req.prompt), "recommendations": len(recs),
                                         "degraded": degraded, "ms": round((time.monotonic() - t0) * 1000, 1)})
        yield "done", {"summary": summary, "engine": self.engine_name, "degraded": degraded is not None,
                       "degraded_reason": degraded}

    # ---- steps ------------------------------------------------------------------------------------------
    async def _llm_fill(self, prompt: str, found: ChatConstraints, fields: set[str], assumptions: list[str],
                        deadline: float) -> tuple[ChatConstraints, str | None]:
        """Ask the LLM for the fields the extractor left empty; keep only values that validate."""
        missing = [f for f in _FILLABLE if f not in fields]
        budget = min(self.settings.chat_extract_deadline_s, deadline - time.monotonic())
        messages = [{"role": "system", "content": "Extract the GPU rental requirements the user states, as JSON. "
                     "Leave out anything the user does not say."}, {"role": "user", "content": prompt}]
        try:
            data = await asyncio.wait_for(self.engine.complete_json(messages, _fill_schema(missing), 96), max(0.01, budget))
        except asyncio.TimeoutError:
            return found, "llm_deadline"
        except EngineError as exc:
            log.warning("llm fill failed", extra={"error": str(exc)[:200]})
            return found, "llm_error"
        merged = found.model_dump()
        for name in missing:
            if data.get(name) not in (None, "", []):
                trial = {**merged, name: data[name]}
                try:
                    ChatConstraints.model_validate(trial)
                except ValueError:
                    continue
                merged = trial
                assumptions.append(f"{name} = {json.dumps(data[name])} inferred by the language model")
        return ChatConstraints.model_validate(merged), None

    @staticmethod
    def _apply_explicit(found: ChatConstraints, explicit: ChatConstraints | None, assumptions: list[str]) -> ChatConstraints:
        if explicit is None:
            return found
        given = {k: getattr(explicit, k) for k in explicit.model_fields_set}
        for k, v in given.items():
            old = getattr(found, k)
            if old not in (None, []) and old != v:
                assumptions.append(f"{k} from the request body ({json.dumps(explicit.model_dump(mode='json')[k])}) "
                                   f"overrides the prompt's")
        return ChatConstraints.model_validate({**found.model_dump(), **explicit.model_dump(include=set(given))})

    async def _offers(self, c: ChatConstraints) -> tuple[list[dict[str, Any]], set[str]]:
        queries = plan.search_queries(c)
        replies = await asyncio.gather(*(self.search(q.encode()) for q, _ in queries))
        items: list[dict[str, Any]] = []
        stale: set[str] = set()
        for (_, prefix), reply in zip(queries, replies):
            if reply.status != 200:
                raise SearchUnavailable((reply.error or {}).get("message", f"search answered {reply.status}"))
            page = json.loads(reply.body)
            stale |= plan.stale_providers(page.get("warnings", []))
            items += [it for it in page["items"] if prefix is None or it["region"].lower().startswith(prefix)]
        return items, stale

    async def _search(self, c: ChatConstraints) -> list[Recommendation]:
        items, stale = await self._offers(c)
        return plan.rank(items, c, stale, self.settings.chat_recommendations)

    async def _relax(self, c: ChatConstraints) -> list[Relaxation]:
        options = plan.relaxations(c)
        results = await asyncio.gather(*(self._offers(relaxed) for _, _, relaxed in options))
        out = []
        for (limit, suggestion, relaxed), (items, stale) in zip(options, results):
            nearest = plan.rank(items, relaxed, stale, 3)
            if nearest:
                out.append(Relaxation(limit=limit, suggestion=suggestion, offers=nearest))
        return sorted(out, key=lambda r: r.offers[0].total_for_duration)

    async def _forecast(self, c: ChatConstraints, recs: list[Recommendation]) -> ChatForecast | None:
        gpu = recs[0].gpu_type if recs else c.gpu_type
        if gpu is None:
            return None
        if self.forecast is None:
            return ChatForecast(degraded=True)
        try:
            from domain.forecast import ForecastRequest  # the Forecast deployment's contract

            top = recs[0] if recs else None
            req = ForecastRequest(gpu_type=gpu, region=top.region if top else None,
                                  provider=top.provider if top else None,
                                  pricing=top.pricing if top else (c.pricing.value if c.pricing else None),
                                  gpu_count=int(top.gpu_count) if top else c.gpu_count,
                                  hours=c.duration_hours, horizon_days=30)
            resp = await asyncio.wait_for(self.forecast.forecast.remote(req), self.settings.chat_forecast_timeout_s)
            data = resp.model_dump() if hasattr(resp, "model_dump") else dict(resp)
            return ChatForecast(**{k: data.get(k) for k in ("hourly", "daily", "ci_low", "ci_high")})
        except Exception as exc:  # the forecast is an extra: never fail the answer for it
            log.warning("forecast unavailable", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})
            return ChatForecast(degraded=True)

    async def _iac(self, recs: list[Recommendation]) -> dict[str, str]:
        if not recs:
            return {}
        offer = recs[0].model_dump()
        offer["id"] = offer["offer_id"]
        if self.detail is not None:
            try:
                reply = await asyncio.wait_for(self.detail(offer["id"]), 1.0)
                if reply.status == 200:
                    offer.update({k: v for k, v in json.loads(reply.body).items() if k in ("external_id", "name")})
            except Exception as exc:  # the snippet falls back to the search item's name
                log.warning("offer detail unavailable", extra={"error": f"{type(exc).__name__}"})
        return {"terraform": terraform(offer)}

    async def _llm_summary(self, prompt: str, top: Recommendation, deadline: float) -> AsyncIterator[str]:
        messages = [{"role": "system", "content": "You help people rent GPUs. In one short sentence, say why the "
                     "recommended offer suits the request. Do not repeat prices or numbers."},
                    {"role": "user", "content": f"Request: {prompt[:500]}\nRecommended: {top.gpu_count:g} x "
                     f"{top.gpu_type} from {top.provider}, {top.pricing}, region {top.region}."}]
        gen = self.engine.stream(messages, self.settings.chat_summary_max_tokens)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise asyncio.TimeoutError
                try:
                    piece = await asyncio.wait_for(gen.__anext__(), left)
                except StopAsyncIteration:
                    return
                yield piece
        finally:
            await gen.aclose()


def _words(text: str) -> list[str]:
    """The template summary as word pieces, like model tokens."""
    parts = text.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(parts)]
