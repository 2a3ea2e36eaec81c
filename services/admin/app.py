"""``create_app``: the admin service on ``create_service_app``, with its FDS and ecommerce clients,
and the docs as pages under ``/runbooks/`` (where the alert rules' runbook links lead)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import otel_setup
from otel_setup.settings import TelemetrySettings
from services.common import http
from services.common.app import create_service_app
from services.common.security import hash_password

from .api.routes import auth, reviews, runbooks, stats
from .models import Base
from .settings import Settings
from .upstream import Upstream, UpstreamError


def create_app(settings: Settings | None = None, *, telemetry_settings: TelemetrySettings | None = None,
               fds_transport: httpx.AsyncBaseTransport | None = None,
               ecommerce_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    # mypy sees pydantic-settings fields as required; BaseSettings fills them from env and defaults.
    settings = settings or Settings()  # type: ignore[call-arg]

    @asynccontextmanager
    async def hook(app: FastAPI) -> AsyncIterator[None]:
        # Only the hash is kept on the app; argon2 runs once here, not per login.
        app.state.admin_password_hash = await hash_password(settings.admin_password.get_secret_value())
        timeout = settings.admin_upstream_timeout
        app.state.upstream = Upstream(
            fds=http.client(settings.fds_url, timeout, transport=fds_transport),
            ecommerce=http.client(settings.ecommerce_url, timeout, transport=ecommerce_transport),
            secret=settings.jwt_secret)
        try:
            yield
        finally:
            await app.state.upstream.aclose()

    app = create_service_app("admin", settings, title="ShopFDS admin", tables=Base, hook=hook,
                             telemetry_settings=telemetry_settings)
    app.add_exception_handler(UpstreamError, _upstream_failed)
    for router in (auth.router, reviews.router, stats.router, runbooks.router):
        app.include_router(router)
    return app


async def _upstream_failed(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UpstreamError)
    otel_setup.capture_exception_with_context(exc, component="upstream", upstream=exc.service)
    return JSONResponse({"detail": exc.detail}, status_code=502)
