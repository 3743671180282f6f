"""Marketplace routes: GET /providers (search), /providers/export, /providers/{id} (FR-MKT-1/2, FR-PROV-3).

By default each ingress replica answers from its own in-process `SearchService` (no Serve handle hop per
request); with `search_in_ingress=False` the routes call the `Search` deployment through its handle.
The handlers read the raw query string (validated by `domain.search`) so that a cached page is served
before any parsing.
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from deployments.search_service import Reply, SearchService
from domain.models import OFFER_EXAMPLE, OfferDetail, SearchPage
from domain.search import ExportQuery, SearchQuery, query_parameters_openapi
from gateway.http.edge import ApiError


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings = app.state.settings
    service = None
    if settings.search_in_ingress or "search" not in app.state.handles:
        service = await SearchService(settings, app.state.runtime).start()
    app.state.search = service
    try:
        yield
    finally:
        if service is not None:
            await service.close()


router = APIRouter(tags=["marketplace"], lifespan=lifespan)
_ERRORS = {422: {"description": "invalid filter, sort or page (the error names the field)"},
           503: {"description": "the search index is still loading"}}


def _raise(reply: Reply) -> None:
    e = reply.error or {}
    raise ApiError(reply.status, e.get("code", "error"), e.get("message", "error"), e.get("details"))


@router.get("/providers", summary="Search GPU offers: filters, sort, pagination, full text",
            response_model=SearchPage, responses=_ERRORS,
            openapi_extra={"parameters": query_parameters_openapi(SearchQuery)})
async def search(request: Request) -> Response:
    return await _json_reply(request, "search", request.scope["query_string"])


async def _json_reply(request: Request, method: str, arg: Any) -> Response:
    """Ask the in-ingress index (or, when it lives in the Search deployment, its handle) and answer its JSON."""
    service: SearchService | None = request.app.state.search
    reply = await (getattr(service, method)(arg) if service is not None
                   else getattr(request.app.state.handles["search"], method).remote(arg))
    if reply.status != 200:
        _raise(reply)
    return Response(reply.body, media_type="application/json")


@router.get("/providers/export", summary="Export the offers matching the filters as CSV or JSON (at most 10,000 rows)",
            responses={200: {"content": {"text/csv": {}, "application/json": {
                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/ProviderOffer"}},
                "example": [OFFER_EXAMPLE]}}}, **_ERRORS},
            openapi_extra={"parameters": query_parameters_openapi(ExportQuery)})
async def export(request: Request) -> Response:
    raw = request.scope["query_string"]
    service: SearchService | None = request.app.state.search
    media = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
    if service is None:
        reply = await request.app.state.handles["search"].export.remote(raw)
        if reply.status != 200:
            _raise(reply)
        fmt = "json" if reply.headers.get("Content-Disposition", "").endswith('.json"') else "csv"
        return Response(reply.body, media_type=media[fmt], headers=reply.headers)
    plan = service.export_plan(raw)
    if isinstance(plan, Reply):
        _raise(plan)
    index, result, fmt = plan
    return StreamingResponse(service.export_chunks(index, result, fmt), media_type=media[fmt],
                             headers=service.export_headers(result, fmt))


@router.get("/providers/{id}", summary="One offer with its recent price history", response_model=OfferDetail,
            responses={404: {"description": "no such offer"}, 422: {"description": "id is not a UUID"}})
async def detail(id: str, request: Request) -> Response:
    return await _json_reply(request, "detail", id)
