"""The `Forecast` Serve deployment: price forecasts for /predict and for other deployments (chat).

Each replica loads the offers with their price history from PostgreSQL every `forecast_refresh_s`, and
checks the state dir for a newer trained model version every `MODEL_CHECK_S` (one small file read). Both
run as one task on the replica's own event loop, started in `__init__`. Training never runs here: the
`ForecastTrainer` actor trains on a schedule (and once at start when no version exists), and
`gpubroker forecast train` on demand.

Handle methods: `forecast(ForecastRequest) -> ForecastResponse` (raises `ForecastError`), and
`reply(payload, fmt)` -> (status, body, media type) for the HTTP route, which never raises across the hop.
"""
from __future__ import annotations

import asyncio
from typing import Any

from pydantic import ValidationError

from cluster.logs import configure_logging, get_logger
from cluster.settings import Settings
from deployments.forecast_service import ForecastService, build_catalog
from domain.forecast import ForecastError, ForecastRequest, ForecastResponse

log = get_logger("forecast")
# a new model version is served within this many seconds of being saved
MODEL_CHECK_S = 5.0


class Forecast:
    """Answers forecasts from the latest trained version (see the module doc)."""

    async def __init__(self, settings: Settings):
        configure_logging(settings.log_level)
        self.settings = settings
        self.service = ForecastService(settings)
        self._pool = None
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def refresh(self) -> None:
        """Reload offers and history from PostgreSQL and the latest model version from disk."""
        from cluster.db import create_pool
        from cluster.repositories.price_history import forecast_offers, history_as_of, history_points

        try:
            if self._pool is None:
                self._pool = await create_pool(self.settings, min_size=0, max_size=2)
            as_of = await history_as_of(self._pool)
            offers = await forecast_offers(self._pool)
            history = await history_points(self._pool, as_of) if as_of else []
            self.service.catalog = await asyncio.to_thread(build_catalog, offers, history, as_of)
        except Exception as exc:  # PostgreSQL down: keep the last catalog, answer 503 if there is none
            log.warning("forecast catalog refresh failed", extra={"error": str(exc)})
        await asyncio.to_thread(self.service.reload_model)

    async def _refresh_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_catalog = loop.time() + self.settings.forecast_refresh_s
        while True:
            await asyncio.sleep(min(MODEL_CHECK_S, self.settings.forecast_refresh_s))
            # until the catalog and its history are loaded (a fresh `up` loads them after deploying), look often
            empty = self.service.catalog is None or not self.service.catalog.history
            try:
                if empty or loop.time() >= next_catalog:
                    next_catalog = loop.time() + self.settings.forecast_refresh_s
                    await self.refresh()
                elif await asyncio.to_thread(self.service.reload_model):
                    log.info("forecast model version loaded", extra={"version": self.service.version.name})
            except Exception as exc:  # a half-written or unreadable version: keep serving the loaded one
                log.warning("forecast refresh failed", extra={"error": f"{type(exc).__name__}: {exc}"})

    async def forecast(self, request: ForecastRequest | dict) -> ForecastResponse:
        """The forecast for one workload; raises ForecastError (404 unknown names, 503 not loaded)."""
        req = request if isinstance(request, ForecastRequest) else ForecastRequest.model_validate(request)
        return self.service.forecast(req)

    async def reply(self, payload: dict[str, Any], fmt: str = "json") -> tuple[int, Any, str]:
        """(status, body, media type) for the HTTP route: JSON of the answer or of the error, or a PNG."""
        try:
            req = ForecastRequest.model_validate(payload)
            resp = self.service.forecast(req)
            if fmt == "png":
                from deployments.forecast_chart import render_png

                dates, values = self.service.history_of(resp)
                return 200, await asyncio.to_thread(render_png, resp, dates, values), "image/png"
            return 200, resp.model_dump_json().encode(), "application/json"
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "body"
            return 422, {"code": "validation_error", "message": f"{field}: {err['msg']}", "details": {"field": field}}, ""
        except ForecastError as exc:
            return exc.status, {"code": exc.code, "message": exc.message, "details": exc.details}, ""

    async def status(self) -> dict[str, Any]:
        """Loaded model version and catalog size of this replica."""
        v, c = self.service.version, self.service.catalog
        return {"version": v.name if v else None, "offers": len(c.offers) if c else 0,
                "series_with_history": len(c.history) if c else 0}
