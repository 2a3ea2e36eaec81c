"""Client spans for the service's dependencies, by the contrib instrumentations.

- SQLAlchemy: every statement a child span of the request (``db.query.text`` is the SQL with its
  bind placeholders; parameter values are never recorded; no SQL commenter). Engines created
  after ``configure`` are traced, so ``create_async_engine`` must be looked up at call time.
- Redis (redis-py, sync and asyncio): the command name with its arguments replaced by ``?``.

HTTP clients are traced per client (``HTTPXClientInstrumentor.instrument_client``, see
``services.common.http``) because that also covers in-process ASGI transports.

The instrumentors are process-wide singletons: the active ``Telemetry`` binds them to its own
tracer provider (re-binding any earlier one) and unbinds them at its shutdown; their own
metrics go to a no-op meter (the catalog is the metric surface).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import TracerProvider

from .guard import guard


def _instrumentors() -> list[tuple[Any, dict[str, Any]]]:
    found: list[tuple[Any, dict[str, Any]]] = []
    with guard("instrument-sqlalchemy"):
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        found.append((SQLAlchemyInstrumentor(), {"enable_commenter": False}))
    with guard("instrument-redis"):
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        found.append((RedisInstrumentor(), {}))
    return found


def instrument(tracer_provider: TracerProvider) -> None:
    for instrumentor, options in _instrumentors():
        with guard("instrument"):
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
            instrumentor.instrument(tracer_provider=tracer_provider,
                                    meter_provider=NoOpMeterProvider(), **options)
    _no_connect_spans()


def _no_connect_spans() -> None:
    """A pool checkout is not a call to the database: without this every request gets one or
    more ``connect`` spans of ~0.1 ms between its statements (cost, and noise in waterfalls)."""
    with guard("instrument-sqlalchemy-connect"):
        from opentelemetry.instrumentation.utils import unwrap
        from sqlalchemy.engine.base import Engine

        if hasattr(Engine.connect, "__wrapped__"):
            unwrap(Engine, "connect")


def uninstrument() -> None:
    for instrumentor, _ in _instrumentors():
        with guard("uninstrument"):
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
