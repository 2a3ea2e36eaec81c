"""The seed's metric helpers, recording into the active ``Telemetry`` (no-ops before it).

    record_http_request(method="GET", endpoint="/v1/products", status_code=200)
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

from . import telemetry as _telemetry

F = TypeVar("F", bound=Callable[..., Any])


def _instrument(name: str) -> Any | None:
    active = _telemetry.current()
    return active.instruments.get(name) if active is not None else None


def record_http_request(method: str, endpoint: str, status_code: int,
                        duration: float | None = None, *, telemetry: Any = None) -> None:
    """Count one request (and its duration) under the service's ``<prefix>_http_*`` metrics."""
    active = telemetry or _telemetry.current()
    if active is None:
        return
    active.http_requests.add(1, {"method": method, "endpoint": endpoint, "status_code": str(status_code)})
    if duration is not None:
        active.http_duration.record(duration, {"method": method, "endpoint": endpoint})


def record_transaction(status: str, amount: float) -> None:
    """Count a payment transaction; completed ones add their amount (KRW) to revenue."""
    counter = _instrument("ecommerce_transactions_total")
    if counter is not None:
        counter.add(1, {"status": status})
    total = _instrument("ecommerce_transaction_amount_total")
    if total is not None and status == "completed" and amount > 0:
        total.add(amount)


def record_fds_evaluation(result: str, duration: float) -> None:
    """Record an FDS call seen from ecommerce: its result and its duration in seconds."""
    counter = _instrument("ecommerce_fds_evaluations_total")
    if counter is not None:
        counter.add(1, {"result": result})
    histogram = _instrument("ecommerce_fds_evaluation_duration_seconds")
    if histogram is not None:
        histogram.record(duration)


def _observe_transaction(transaction_type: str, started: float) -> None:
    histogram = _instrument("ecommerce_transaction_processing_duration_seconds")
    if histogram is not None:
        histogram.record(time.perf_counter() - started, {"transaction_type": transaction_type})


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
                    _observe_transaction(transaction_type, started)

            return async_inner  # type: ignore[return-value]

        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                _observe_transaction(transaction_type, started)

        return inner  # type: ignore[return-value]

    return decorate
