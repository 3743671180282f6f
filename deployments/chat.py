"""The `Chat` Serve deployment: one LLM engine per replica (the bundled model is loaded once, in the
constructor) and the chat service, which asks the `Search` deployment for offers and the `Forecast`
deployment for the price outlook through their handles.

CPU: the replica is `num_cpus=0` like every deployment here (idle it costs nothing), but while the local
engine generates it keeps `chat_llm_threads` cores busy; on a 2-core machine one replica is the sensible
maximum (`chat_replicas_max`), since a second one would only compete for the same cores.
"""
from __future__ import annotations

from typing import Any, AsyncIterator

from cluster.logs import configure_logging, get_logger
from cluster.settings import Settings
from deployments.chat_service import ChatService, SearchUnavailable
from deployments.llm_engines import EngineError, build_engine
from domain.chat import ChatRequest

log = get_logger("chat")


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"status": status, "error": {"code": code, "message": message}}


class Chat:
    async def __init__(self, settings: Settings, search: Any = None, forecast: Any = None):
        configure_logging(settings.log_level)
        from adapters.registry import names

        self.settings = settings
        self._own_search = None
        engine, engine_error = None, None
        try:
            engine = await build_engine(settings)
        except EngineError as exc:  # answers still come, from the extractor and templates, marked degraded
            engine_error = "llm_unavailable"
            log.warning("chat engine unavailable", extra={"engine": settings.chat_engine, "error": str(exc)[:300]})
        if search is not None:
            search_fn, detail_fn = (lambda raw: search.search.remote(raw)), (lambda oid: search.detail.remote(oid))
        else:  # no Search deployment given: an index of our own, as the ingress keeps one
            from cluster.runtime import Runtime
            from deployments.search_service import SearchService

            self._runtime = await Runtime(settings).start()
            self._own_search = await SearchService(settings, self._runtime).start()
            search_fn, detail_fn = self._own_search.search, self._own_search.detail
        self.service = ChatService(settings, search_fn, detail_fn, forecast, engine, names(), engine_error)

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """The whole answer (a ChatResponse as JSON), or {status, error} when the search cannot answer."""
        try:
            resp = await self.service.answer(ChatRequest.model_validate(body))
        except SearchUnavailable as exc:
            return _error(503, "dependency_unavailable", f"offer search unavailable: {exc}")
        return resp.model_dump(mode="json")

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The answer as events {event: result|token|done|error, data}: the structured part first."""
        try:
            async for kind, data in self.service.events(ChatRequest.model_validate(body)):
                yield {"event": kind, "data": data}
        except SearchUnavailable as exc:
            yield {"event": "error", "data": _error(503, "dependency_unavailable", f"offer search unavailable: {exc}")}

    async def engine_info(self) -> dict[str, Any]:
        """Which engine this replica serves with (`none` when it could not start)."""
        return {"engine": self.service.engine_name, "error": self.service.engine_error}

    async def __del__(self):
        try:
            if self.service.engine is not None:
                await self.service.engine.close()
            if self._own_search is not None:
                await self._own_search.close()
                await self._runtime.close()
        except Exception:
            pass
