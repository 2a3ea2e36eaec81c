"""ShopFDS telemetry: one call gives a FastAPI service traces, metrics with exemplars,
span-derived FDS engine metrics and Sentry errors, configured by environment variables.

    from fastapi import FastAPI
    import otel_setup

    app = FastAPI()
    telemetry = otel_setup.configure("ecommerce", app=app)

Every variable and default is listed in ``otel_setup.settings``; metric names in
``otel_setup.catalog``.
"""

from .catalog import Attr
from .metrics import (
    record_fds_evaluation,
    record_http_request,
    record_transaction,
    track_transaction_duration,
)
from .sentry import (
    add_breadcrumb,
    add_fds_breadcrumb,
    capture_exception_with_context,
    capture_fds_exception,
    capture_fds_performance_issue,
    init_sentry,
    start_transaction,
)
from .settings import TelemetrySettings, load_settings
from .telemetry import Telemetry, configure, current

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
    "record_fds_evaluation",
    "record_http_request",
    "record_transaction",
    "start_transaction",
    "track_transaction_duration",
]
