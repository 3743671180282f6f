"""Price history routes: GET /prices/history (by GPU over time) and GET /providers/{id}/history (one offer).

Both are public like search (limited per client IP). The GPU filter means what it means in search and in
the stream (`domain.gpus.matching_gpus`); a name that denotes no GPU answers 422.
"""
from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from cluster.repositories import price_history as repo
from domain.gpus import matching_gpus
from domain.history import (GpuHistory, GpuHistoryQuery, HistoryPoint, OfferHistoryPage, OfferHistoryQuery,
                            group_series, history_cursor)
from domain.pagination import CursorError
from gateway.http.edge import ApiError

router = APIRouter(tags=["history"])


def _json(model: BaseModel) -> Response:
    """The model's JSON as built (FastAPI would validate it a second time against the response_model)."""
    return Response(model.model_dump_json(by_alias=True), media_type="application/json")


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "validation_error", f"invalid request: {field}",
                    details=[{"field": field, "message": message, "type": "value_error"}])


@router.get("/prices/history", response_model=GpuHistory, response_model_by_alias=True,
            summary="Price statistics of a GPU model over time: min/median/max per provider, region, pricing",
            responses={422: {"description": "unknown GPU, bad range (at most 400 days of days, 530 weeks) or bucket"}})
async def gpu_history(request: Request, q: Annotated[GpuHistoryQuery, Query()]) -> Response:
    gpus = matching_gpus(q.gpu_type)
    if not gpus:
        raise _invalid("gpu_type", f"{q.gpu_type!r} names no known GPU model")
    pool = await request.app.state.runtime.get_pg()
    rows = await repo.bucket_stats(pool, gpus, q.from_, q.to, q.bucket.value, q.provider,
                                   q.pricing.value if q.pricing else None)
    return _json(GpuHistory(gpu_type=q.gpu_type, gpus=gpus, bucket=q.bucket, from_=q.from_, to=q.to,
                            series=group_series(rows)))


@router.get("/providers/{id}/history", response_model=OfferHistoryPage,
            summary="Every recorded price of one offer, newest first, in keyset pages",
            responses={404: {"description": "no such offer"},
                       422: {"description": "id is not a UUID, bad range, limit or cursor"}})
async def offer_history(id: UUID, request: Request, q: Annotated[OfferHistoryQuery, Query()]) -> Response:
    try:
        after = q.position()
    except CursorError as exc:
        raise _invalid("cursor", str(exc)) from None
    pool = await request.app.state.runtime.get_pg()
    oid = str(id)
    rows = await repo.offer_points(pool, oid, q.from_, q.to, after, q.limit + 1)
    if not rows and not await repo.offer_exists(pool, oid):
        raise ApiError(404, "not_found", f"no offer with id {oid}")
    more = len(rows) > q.limit
    rows = rows[:q.limit]
    nxt = history_cursor(rows[-1]["recorded_at"], rows[-1]["id"]) if more else None
    points = [HistoryPoint(price_per_hour=r["price_per_hour"], availability=r["availability"],
                           recorded_at=r["recorded_at"]) for r in rows]
    return _json(OfferHistoryPage(offer_id=oid, items=points, next_cursor=nxt))
