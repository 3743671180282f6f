"""Price forecast routes: POST /predict (JSON) and GET /predict (JSON, or the chart with format=png), FR-COST-1.

Both go to the `Forecast` deployment through its handle; errors come back as values and are answered in
the error format (404 unknown GPU/region/provider with the closest known names, 422 bad input).
"""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from domain.forecast import ForecastRequest, ForecastResponse
from gateway.http.edge import ApiError

router = APIRouter(tags=["forecast"])
_ERRORS = {404: {"description": "unknown GPU, region or provider (details.closest names the nearest known ones)"},
           422: {"description": "invalid input (horizon_days outside 1..30, ...)"},
           503: {"description": "the forecast service is not ready"}}


async def _answer(request: Request, payload: dict[str, Any], fmt: str) -> Response:
    handle = request.app.state.handles.get("forecast")
    if handle is None:
        raise ApiError(503, "dependency_unavailable", "the forecast service is not deployed")
    status, body, media = await handle.reply.remote(payload, fmt)
    if status != 200:
        raise ApiError(status, body["code"], body["message"], body.get("details"))
    return Response(body, media_type=media)


@router.post("/predict", summary="Forecast a GPU's price for the next 1..30 days, with the workload's cost",
             response_model=ForecastResponse, responses=_ERRORS)
async def predict(body: ForecastRequest, request: Request) -> Response:
    return await _answer(request, body.model_dump(exclude_none=True), "json")


@router.get("/predict", summary="The same forecast from query parameters; format=png returns the chart",
            response_model=ForecastResponse,
            responses={**_ERRORS, 200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}})
async def predict_get(request: Request, gpu_type: str = Query(..., min_length=1, max_length=100),
                      region: str | None = Query(None, description="provider region"),
                      provider: str | None = Query(None, description="provider id"),
                      pricing: str | None = Query(None, description="on_demand, spot or interruptible"),
                      gpu_count: float | None = Query(None, description="GPUs per instance"),
                      hours: float | None = Query(None, description="hours of use (default: the whole horizon)"),
                      horizon_days: int = Query(30, description="days to forecast (1..30)"),
                      format: Literal["json", "png"] = Query("json", description="png: the chart")) -> Response:
    payload = {"gpu_type": gpu_type, "region": region, "provider": provider, "pricing": pricing,
               "gpu_count": gpu_count, "hours": hours, "horizon_days": horizon_days}
    return await _answer(request, {k: v for k, v in payload.items() if v is not None}, format)
