"""``create_app``: the ML service on the shared app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from otel_setup.settings import TelemetrySettings
from services.common.app import create_service_app

from .api.routes import models, scoring
from .lifecycle import ModelService
from .models import Base
from .settings import Settings


def create_app(settings: Settings | None = None, *,
               telemetry_settings: TelemetrySettings | None = None) -> FastAPI:
    # Every field has a default; mypy cannot see pydantic-settings' positional defaults.
    settings = settings or Settings()  # type: ignore[call-arg]

    @asynccontextmanager
    async def hook(app: FastAPI) -> AsyncIterator[None]:
        service = ModelService(app.state.telemetry)
        app.state.ml = service
        async with app.state.db.sessions() as session:
            await service.start(session, settings.train_on_start, settings.default_samples,
                                settings.default_fraud_rate, settings.default_seed)
        yield

    app = create_service_app("ml", settings, title="ShopFDS ML", tables=Base, hook=hook,
                             telemetry_settings=telemetry_settings)
    app.include_router(models.router)
    app.include_router(scoring.router)
    return app
