"""Liveness, readiness and metrics routes."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from domain.api import Health, Readiness
from gateway.http.metrics import render

router = APIRouter(tags=["system"])


@router.get("/health", summary="Liveness: the process answers", response_model=Health)
async def health() -> dict:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: PostgreSQL, Redis and NATS each checked", response_model=Readiness,
            responses={503: {"description": "not ready: the error names each dependency that is down"}})
async def ready(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    checks = await runtime.check()
    deps = {c.name: c.as_dict() for c in checks}
    down = [c.name for c in checks if not c.ok]
    if down:
        from cluster.dependencies import RETRY_AFTER_S
        from gateway.http.edge import error_body

        body = error_body(503, f"not ready: {', '.join(down)} down", "dependency_unavailable",
                          details={"down": down, "dependencies": deps})
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
    return JSONResponse({"status": "ready", "dependencies": deps})


@router.get("/metrics", summary="Prometheus exposition across all replicas", response_class=Response)
async def metrics() -> Response:
    body, ctype = render()
    return Response(body, media_type=ctype)
