"""The HTTP ingress: one FastAPI app inside a Serve deployment, composing feature routers.

Feature modules add their router to `ROUTERS`. The app is built on the replica
after its async constructor has opened the runtime (PostgreSQL, Redis, NATS).
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from ray import serve

from cluster.logs import configure_logging
from cluster.runtime import Runtime
from cluster.settings import Settings
from deployments import (api_admin, api_api_keys, api_auth, api_bookings, api_chat, api_forecast, api_gdpr,
                         api_history, api_invoices, api_providers_health, api_search, api_system, api_webhooks)
from gateway.http.edge import EdgeMiddleware, install_error_handlers
from gateway.http.openapi import install_openapi
from gateway.http.ratelimit import install_rate_limit
from gateway.http.request_limits import install_request_limits

# In this order: '/providers/health' comes before any other /providers route, so that '/providers/{id}'
# does not capture 'health'.
ROUTERS: list[APIRouter] = [
    api_system.router,
    api_providers_health.router,
    api_auth.router,
    api_api_keys.router,
    api_admin.router,
    api_gdpr.router,
    api_history.router,
    api_search.router,
    api_bookings.router,
    api_webhooks.router,
    api_invoices.router,
    api_forecast.router,
    api_chat.router,
]


def create_app(runtime: Runtime, handles: dict[str, Any] | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(
        title="GPU Broker API",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.settings = runtime.settings
    app.state.handles = handles or {}
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    install_rate_limit(app)
    install_request_limits(app)
    install_openapi(app)
    app.add_middleware(EdgeMiddleware)
    return app


@serve.ingress()
class Ingress:
    """The HTTP front door. Holds one Runtime (connection pools) per replica."""

    async def __init__(self, settings: Settings, handles: dict[str, Any] | None = None):
        configure_logging(settings.log_level)
        self.settings = settings
        self.handles = handles or {}
        self.runtime = await Runtime(settings).start()

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self.runtime, self.handles)
