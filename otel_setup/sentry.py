"""Sentry for errors, linked to OTel traces; the generic Sentry helpers.

Design (each point is a pitfall met in sentry-sdk):

- OTel does the tracing; sentry-sdk's own tracing stays off. ``OTLPIntegration`` is used only
  for trace *linking* (every event carries the active OTel trace and span id); its exporter
  and its propagator are off: the propagator would replace W3C ``traceparent``, and its
  exporter would bypass our PII scrubbing. Sampled spans reach Sentry's OTLP endpoint through
  our own scrubbed, bounded exporter instead, unless the collector forwards them
  (``SHOPFDS_SENTRY_TRACES_VIA_COLLECTOR``: its Sentry overlay, after tail sampling).
- The Starlette/FastAPI integrations are disabled: they capture exceptions outside the OTel
  server span, where the event's trace id matches no trace. ``asgi.TelemetryMiddleware``
  captures inside the span.
- ``before_send`` / ``before_breadcrumb`` scrub every part of the payload (frame locals
  included), drop events below WARNING, and run guarded: a scrubber bug drops the event (it is
  counted), never raises, never sends unscrubbed data.
- The ``otel_setup`` logger is ignored by the logging integration: no error loops.
- Events the transport loses (Sentry down, 429, 5xx, full queue) are counted
  (``sentry_transport``); sentry-sdk's atexit flush is off when ``Telemetry.shutdown`` closes
  Sentry within its deadline.
"""

from __future__ import annotations

import logging
from typing import Any

import sentry_sdk
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from sentry_sdk.utils import BadDsn

from .guard import STATS, report_failure, warn_once
from .scrub import EventScrubber, scrub_mapping
from .sentry_transport import CountingTransport

_scrubber = EventScrubber()
_LEVELS = {"fatal": 50, "critical": 50, "error": 40, "warning": 30, "info": 20, "debug": 10}


def _dropped(reason: str) -> None:
    STATS.add("otel_setup_sentry_events_dropped_total", reason=reason)


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    try:
        if _LEVELS.get(str(event.get("level", "error")), 40) < logging.WARNING:
            _dropped("below_warning")
            return None
        return _scrubber.scrub_event(event)
    except Exception as exc:
        report_failure("sentry-before-send", exc)
        _dropped("scrub_error")
        return None


def before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return _scrubber.scrub_breadcrumb(crumb)
    except Exception as exc:
        report_failure("sentry-before-breadcrumb", exc)
        return None


def sentry_otlp_endpoint(dsn: str) -> tuple[str, dict[str, str]]:
    """Sentry's OTLP traces URL and ``x-sentry-auth`` header for a DSN."""
    from sentry_sdk.consts import VERSION, EndpointType
    from sentry_sdk.utils import Dsn

    auth = Dsn(dsn).to_auth(f"sentry.python/{VERSION}")
    return auth.get_api_url(EndpointType.OTLP_TRACES), {"x-sentry-auth": auth.to_header()}


def start(dsn: str, environment: str | None = None, release: str | None = None, *,
          exit_flush: bool = True) -> bool:
    """Start sentry-sdk for errors, linked to the active OTel trace (see the module's design).

    ``exit_flush=False``: the caller closes Sentry within its own shutdown deadline
    (``Telemetry.shutdown``), so sentry-sdk's atexit hook, which would first wait its own 2 s on
    a dead Sentry, is off. Returns False (and does nothing) if the DSN is invalid.
    """
    from sentry_sdk.integrations.atexit import AtexitIntegration
    from sentry_sdk.integrations.fastapi import FastApiIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration, ignore_logger
    from sentry_sdk.integrations.otlp import OTLPIntegration
    from sentry_sdk.integrations.starlette import StarletteIntegration

    disabled: list[Any] = [StarletteIntegration(), FastApiIntegration()]
    if not exit_flush:
        disabled.append(AtexitIntegration())
    try:
        sentry_sdk.init(
            dsn=dsn,
            environment=environment,
            release=release,
            # No user identity or request bodies from integrations; frame locals stay (they
            # are how an error is debugged) and are scrubbed in before_send.
            data_collection={"user_info": False, "http_bodies": []},
            before_send=before_send,  # type: ignore[arg-type]
            before_breadcrumb=before_breadcrumb,  # type: ignore[arg-type]
            traces_sample_rate=None,
            shutdown_timeout=2,
            integrations=[
                OTLPIntegration(setup_otlp_traces_exporter=False, setup_propagator=False,
                                capture_exceptions=False),
                LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
            ],
            disabled_integrations=disabled,
            # Losses (network, 429, 5xx, full queue) counted in otel_setup_sentry_events_dropped_total.
            transport=CountingTransport,
        )
    except BadDsn as exc:
        warn_once("sentry-dsn", "invalid SENTRY_DSN (%s); Sentry disabled", exc)
        return False
    except Exception as exc:  # anything else: warn once, run without Sentry
        report_failure("sentry-init", exc)
        return False
    ignore_logger("otel_setup")
    ignore_logger("uvicorn.access")
    return True


def mark_span(exc: BaseException, event_id: str | None) -> None:
    span = trace.get_current_span()
    if span.is_recording():
        span.record_exception(exc)
        span.set_status(StatusCode.ERROR, type(exc).__name__)
        if event_id:
            span.set_attribute("sentry.event_id", event_id)


def capture_unhandled(exc: BaseException) -> str | None:
    """Used by the ASGI middleware, inside the server span."""
    event_id = sentry_sdk.capture_exception(exc)
    if event_id:
        trace.get_current_span().set_attribute("sentry.event_id", event_id)
    return event_id


def capture_exception_with_context(exc: BaseException, **context: Any) -> str | None:
    """Send ``exc`` with context (``user_id`` becomes the user, ids become tags)."""
    with sentry_sdk.new_scope() as scope:
        user_id = context.pop("user_id", None)
        if user_id is not None:
            scope.set_user({"id": str(user_id)})
        for key in ("transaction_id", "order_id", "payment_method"):
            if context.get(key) is not None:
                scope.set_tag(key, str(context[key]))
        scope.set_context("details", scrub_mapping(context))
        event_id = sentry_sdk.capture_exception(exc)
    mark_span(exc, event_id)
    return event_id


def add_breadcrumb(message: str, category: str = "default", level: str = "info",
                   data: dict[str, Any] | None = None) -> None:
    if sentry_sdk.get_client().is_active():  # without a DSN a breadcrumb is pure cost on the request path
        sentry_sdk.add_breadcrumb(message=message, category=category, level=level, data=data or {})
