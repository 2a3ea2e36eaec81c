"""The shop's telemetry helpers, beside the generic core: the seed's transaction metrics and
FDS Sentry helpers, each the one writer of what it records. They record into the active
``Telemetry`` (or the one given) and do nothing before ``configure``.

    record_transaction(status="completed", amount=50000)
    record_fds_evaluation(result="low_risk", duration=0.075)

    @track_transaction_duration("payment")
    async def process_payment(order_id: str): ...

Measurements taken inside a sampled span carry it as exemplar.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sentry_sdk
from opentelemetry import trace

from .catalog import Attr
from .sentry import add_breadcrumb, mark_span
from .state import current
from .telemetry import Telemetry

F = TypeVar("F", bound=Callable[..., Any])


def _instrument(name: str, telemetry: Telemetry | None) -> Any | None:
    active = telemetry or current()
    return active.instruments.get(name) if active is not None else None


def record_transaction(status: str, amount: float, *, telemetry: Telemetry | None = None) -> None:
    """Count a payment transaction; completed ones add their amount (KRW) to revenue."""
    counter = _instrument("ecommerce_transactions_total", telemetry)
    if counter is not None:
        counter.add(1, {"status": status})
    total = _instrument("ecommerce_transaction_amount_total", telemetry)
    if total is not None and status == "completed" and amount > 0:
        total.add(amount)


def record_fds_evaluation(result: str, duration: float, *, telemetry: Telemetry | None = None) -> None:
    """Record an FDS call seen from ecommerce: its result and its duration in seconds."""
    counter = _instrument("ecommerce_fds_evaluations_total", telemetry)
    if counter is not None:
        counter.add(1, {"result": result})
    histogram = _instrument("ecommerce_fds_evaluation_duration_seconds", telemetry)
    if histogram is not None:
        histogram.record(duration)


def observe_transaction_duration(transaction_type: str, seconds: float, *,
                                 telemetry: Telemetry | None = None) -> None:
    """The time one transaction of ``transaction_type`` (checkout, payment) took."""
    histogram = _instrument("ecommerce_transaction_processing_duration_seconds", telemetry)
    if histogram is not None:
        histogram.record(seconds, {"transaction_type": transaction_type})


def track_transaction_duration(transaction_type: str) -> Callable[[F], F]:
    """Decorator timing a sync or async function, failures included."""

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_inner(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    observe_transaction_duration(transaction_type, time.perf_counter() - started)

            return async_inner  # type: ignore[return-value]

        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                observe_transaction_duration(transaction_type, time.perf_counter() - started)

        return inner  # type: ignore[return-value]

    return decorate


def capture_fds_exception(exc: BaseException, transaction_id: str | None = None,
                          risk_score: float | None = None, engine: str | None = None) -> str | None:
    """An FDS failure, grouped by engine and exception type."""
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("component", "fds")
        scope.set_tag(Attr.FDS_ENGINE, engine or "unknown")
        if transaction_id:
            scope.set_tag("transaction_id", str(transaction_id))
        scope.set_context("fds", {"transaction_id": transaction_id, "risk_score": risk_score,
                                  "engine": engine})
        scope.fingerprint = ["fds-exception", engine or "unknown", type(exc).__name__]
        event_id = sentry_sdk.capture_exception(exc)
    mark_span(exc, event_id)
    return event_id


def capture_fds_performance_issue(duration_ms: float, threshold_ms: float = 100.0,
                                  transaction_id: str | None = None,
                                  engine: str | None = None) -> str | None:
    """An evaluation over its SLA, as a warning grouped by slowest engine."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(Attr.FDS_SLA_VIOLATION, True)
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("component", "fds")
        scope.set_tag(Attr.FDS_ENGINE, engine or "unknown")
        if transaction_id:
            scope.set_tag("transaction_id", str(transaction_id))
        scope.set_context("fds_performance", {"duration_ms": duration_ms,
                                              "threshold_ms": threshold_ms, "engine": engine})
        scope.fingerprint = ["fds-sla-violation", engine or "unknown"]
        return sentry_sdk.capture_message(
            f"FDS evaluation {duration_ms:.1f} ms over {threshold_ms:.0f} ms SLA (engine {engine})",
            level="warning",
        )


def add_fds_breadcrumb(message: str, engine: str, risk_score: float | None = None,
                       decision: str | None = None) -> None:
    add_breadcrumb(message, category=f"fds.{engine}", level="info",
                   data={"engine": engine, "risk_score": risk_score, "decision": decision})
