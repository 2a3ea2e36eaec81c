"""ShopFDS telemetry: one call gives a FastAPI service traces, metrics with exemplars,
span-derived FDS engine metrics and Sentry errors, configured by environment variables.

    from fastapi import FastAPI
    import otel_setup

    app = FastAPI()
    telemetry = otel_setup.configure("ecommerce", app=app)

Every variable and default is listed in ``otel_setup.settings``; metric names in
``otel_setup.catalog``. The generic core (``wiring``, ``telemetry``, ``asgi``, ``specs``...)
knows no service; the shop's metrics, span contract and helpers are ``catalog`` and ``shop``.
"""

from .catalog import Attr
from .sentry import add_breadcrumb, capture_exception_with_context
from .settings import TelemetrySettings, load_settings
from .shop import (
    add_fds_breadcrumb,
    capture_fds_exception,
    capture_fds_performance_issue,
    observe_transaction_duration,
    record_fds_evaluation,
    record_transaction,
    track_transaction_duration,
)
from .state import current
from .telemetry import Telemetry
from .wiring import configure, init_sentry, record_http_request, start_transaction

__all__ = [
    "Attr",
    "Telemetry",
    "TelemetrySettings",
    "add_breadcrumb",
    "add_fds_breadcrumb",
    "capture_exception_with_context",
    "capture_fds_exception",
    "capture_fds_performance_issue",
    "configure",
    "current",
    "init_sentry",
    "load_settings",
    "observe_transaction_duration",
    "record_fds_evaluation",
    "record_http_request",
    "record_transaction",
    "start_transaction",
    "track_transaction_duration",
]
