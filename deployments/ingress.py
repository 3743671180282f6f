"""The HTTP ingress: one FastAPI app inside a Serve deployment, composing feature routers.

Feature modules add their router to `ROUTERS` (module path, attribute). The app is built on the replica
after its async constructor has opened the runtime (PostgreSQL, Redis, NATS).
"""
from __future__ import annotations

import importlib
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from ray import serve

from cluster.logs import configure_logging
from cluster.runtime import Runtime
from cluster.settings import Settings
from gateway.http.edge import EdgeMiddleware, install_error_handlers
from gateway.http.openapi import install_openapi
from gateway.http.ratelimit import install_rate_limit
from gateway.http.request_limits import install_request_limits

ROUTERS: list[str] = [
    "deployments.api_system:router",
    # before any other /providers route: '/providers/{id}' must not capture 'health'
    "deployments.api_providers_health:router",
    "deployments.api_auth:router",
    "deployments.api_api_keys:router",
    "deployments.api_admin:router",
    "deployments.api_gdpr:router",
    "deployments.api_history:router",
    "deployments.api_search:router",
    "deployments.api_bookings:router",
    "deployments.api_webhooks:router",
    "deployments.api_invoices:router",
    "deployments.api_forecast:router",
    "deployments.api_chat:router",
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
    for spec in ROUTERS:
        mod, attr = spec.split(":")
        app.include_router(getattr(importlib.import_module(mod), attr))
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
