"""The FDS app: engines, model source, feeds and metrics opened at start, routes under /v1/fds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from otel_setup.settings import TelemetrySettings
from services.common import http
from services.common.app import create_service_app
from services.common.cache import Cache
from services.common.db import Database

from . import rulebook
from .api import ROUTERS
from .context import AGGREGATE_CALLS
from .engines import Engine, feeds
from .engines.breaker import CircuitBreaker
from .engines.cti import CtiEngine, IpReputation
from .engines.ml import MlEngine, ModelSource
from .engines.rule import RuleEngine
from .evaluation import EvaluationService
from .evaluator import Evaluator
from .metrics import FdsMetrics
from .models import Base
from .settings import Settings
from .writer import EvaluationWriter


def create_app(settings: Settings | None = None, *, telemetry_settings: TelemetrySettings | None = None,
               ml_transport: httpx.AsyncBaseTransport | None = None,
               cti_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or Settings.model_validate({})

    @asynccontextmanager
    async def hook(app: FastAPI) -> AsyncIterator[None]:
        # Rule book and feeds first: a bad file stops the start with its name and line.
        rules = rulebook.load(settings.rules_path)
        threat_feeds = feeds.load(settings.cti_feeds_dir)
        source = ModelSource(http.client(settings.ml_url, settings.ml_fetch_timeout_seconds, ml_transport),
                             settings.ml_refresh_seconds)
        reputation = _reputation(settings, app, cti_transport)
        await source.refresh()
        source.start()
        engines: list[Engine] = [RuleEngine(rules), MlEngine(source, app.state.faults),
                                 CtiEngine(threat_feeds, reputation, settings.cti_provider_threshold,
                                           app.state.faults, settings.cti_slow_fault_share)]
        app.state.model_source = source
        app.state.ip_reputation = reputation
        service = _evaluation_service(settings, app, engines)
        # The routes reach the service through api/deps.py; the writer is on app.state too, for
        # callers outside a request (tests flush it before reading the table).
        app.state.evaluation, app.state.writer = service, service.writer
        metrics, writer, db = service.metrics, service.writer, service.writer.db
        await _restore_quality(metrics, db)
        metrics.start_quality_refresh(db.sessions, settings.quality_refresh_seconds)
        await _warm_cache(service.cache)
        writer.start()
        try:
            yield
        finally:
            await metrics.close()
            await writer.close()  # before the database closes: the last rows go in
            await source.close()
            if reputation is not None:
                await reputation.close()

    app = create_service_app("fds", settings, title="ShopFDS fraud detection", tables=Base, hook=hook,
                             telemetry_settings=telemetry_settings)
    for router in ROUTERS:
        app.include_router(router)
    return app


def _evaluation_service(settings: Settings, app: FastAPI, engines: list[Engine]) -> EvaluationService:
    """The evaluator, the FDS metrics and the write-behind writer, held by the service the routes use."""
    cache: Cache = app.state.cache
    db: Database = app.state.db
    instruments = app.state.telemetry.instruments
    evaluator = Evaluator(settings, cache, app.state.telemetry.tracer, engines)
    metrics = FdsMetrics(instruments, settings.latency_window, settings.sla_seconds, settings.quality_window_seconds)
    writer = EvaluationWriter(db, settings.write_interval_seconds, settings.write_batch, settings.write_max_pending,
                              retry_max=settings.write_retry_max_seconds,
                              dropped=instruments["fds_evaluation_writes_dropped_total"])
    return EvaluationService(evaluator, writer, cache, metrics, settings)


def _reputation(settings: Settings, app: FastAPI,
                transport: httpx.AsyncBaseTransport | None) -> IpReputation | None:
    if not settings.cti_provider_url:
        return None
    client = http.client(settings.cti_provider_url, settings.cti_provider_timeout_seconds, transport)
    breaker = CircuitBreaker(settings.cti_breaker_failures, settings.cti_breaker_reset_seconds)
    return IpReputation(client, app.state.cache, breaker, settings.cti_cache_ttl_seconds)


async def _warm_cache(cache: Cache) -> None:
    """Open the cache connections one evaluation uses at once, before the first one pays for it
    (connection set-up to Redis would otherwise eat the aggregates budget)."""
    await asyncio.gather(*(cache.get("fds:warm-up") for _ in range(AGGREGATE_CALLS)))


async def _restore_quality(metrics: FdsMetrics, db: Database) -> None:
    """Precision/recall/F1 gauges from the labels already in the database."""
    async with db.sessions() as session:
        await metrics.refresh_quality(session)
