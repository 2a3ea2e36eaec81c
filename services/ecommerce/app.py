"""``create_app``: the ecommerce service on the shared app factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from otel_setup.settings import TelemetrySettings
from services.common import http
from services.common.app import create_service_app
from services.common.tasks import stop

from .activity import ActiveUsers
from .api.routes import auth, cart, orders, products
from .catalog_seed import seed_catalog
from .checkout import Shop
from .fds_client import FdsClient
from .metrics import ShopMetrics
from .models import Base
from .payment import PaymentGateway
from .product_cache import ProductCache
from .reconcile import Reconciler
from .settings import Settings


def create_app(settings: Settings | None = None, *, telemetry_settings: TelemetrySettings | None = None,
               fds_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """``fds_transport``: how to reach the FDS (tests pass the real FDS app's ASGI transport)."""
    settings = settings or Settings.model_validate({})

    @asynccontextmanager
    async def hook(app: FastAPI) -> AsyncIterator[None]:
        metrics = ShopMetrics(app.state.telemetry)
        if settings.seed_catalog:
            async with app.state.db.sessions() as session:
                await seed_catalog(session)
        active = ActiveUsers(metrics, app.state.cache, settings.active_user_window_seconds)
        product_cache = ProductCache(app.state.cache, metrics, settings.product_cache_ttl)
        fds_http = http.client(settings.fds_url, settings.fds_timeout, transport=fds_transport)
        app.state.metrics, app.state.active_users, app.state.product_cache = metrics, active, product_cache
        gateway = PaymentGateway(settings.payment_failure_rate, settings.payment_latency_ms, app.state.faults,
                                 app.state.telemetry.instruments["ecommerce_errors_total"], app.state.cache)
        app.state.shop = Shop(FdsClient(fds_http, settings.fds_timeout, settings.fds_fail_policy, metrics),
                              gateway, product_cache, metrics, settings.verify_code)
        refresher = asyncio.create_task(active.run(settings.active_user_refresh_seconds))
        app.state.reconciler = Reconciler(app.state.db, app.state.shop, app.state.telemetry.instruments,
                                          settings.reconcile_after_seconds, settings.reconcile_interval_seconds)
        if settings.reconcile:
            app.state.reconciler.start()
        try:
            yield
        finally:
            await app.state.reconciler.close()
            await stop(refresher)
            await fds_http.aclose()

    app = create_service_app("ecommerce", settings, title="ShopFDS ecommerce", tables=Base, hook=hook,
                             telemetry_settings=telemetry_settings)
    for module in (auth, products, cart, orders):
        app.include_router(module.router)
    return app
