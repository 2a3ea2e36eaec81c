"""HTTP clients for service-to-service calls: bounded timeouts, traced, W3C context propagated.

Each outgoing request is a client span, child of the current request's span, and carries
``traceparent``, so one checkout is one trace across ecommerce -> FDS (-> ML, -> CTI provider).
Tests pass ``transport=httpx.ASGITransport(app=other_service_app)`` to call the real other
service in-process.
"""

from __future__ import annotations

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

import otel_setup

RETRY_HEADER = "x-shopfds-retry"
"""``true`` on a request that may repeat one whose answer was lost (ecommerce's reconciler asking
the FDS again): the FDS then answers from its table even without a replay marker in its cache."""


def client(base_url: str, timeout: float, transport: httpx.AsyncBaseTransport | None = None,
           headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    http = httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 1.0)),
        transport=transport,
        headers=headers,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )
    telemetry = otel_setup.current()
    if telemetry is not None and telemetry.enabled:
        HTTPXClientInstrumentor.instrument_client(http, tracer_provider=telemetry.tracer_provider)
    return http
