"""The simulated payment gateway: a charge takes ``payment_latency_ms`` and is declined with
probability ``payment_failure_rate`` (both settings). Its time is
``ecommerce_transaction_processing_duration_seconds{transaction_type="payment"}``.

The ``payment-errors`` fault (``/internal/faults``) makes the gateway itself fail that share of
charges, as an outage would: those count as declined payments *and* as
``ecommerce_errors_total{error_type="payment_gateway"}`` (the High Error Rate alert's input).

It is handed only what a real gateway token would carry (method, BIN, last 4, amount): the
shop never holds a card number after validating it.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import otel_setup
from services.common.faults import Faults


class PaymentGateway:
    def __init__(self, failure_rate: float, latency_ms: float, faults: Faults | None = None,
                 errors: Any = None) -> None:
        self.failure_rate = failure_rate
        self.latency_ms = latency_ms
        self.faults = faults
        self.errors = errors
        self._random = random.Random()

    @otel_setup.track_transaction_duration("payment")
    async def charge(self, amount: int, method: str, card_bin: str | None, card_last4: str | None) -> bool:
        """True when the charge is approved."""
        otel_setup.add_breadcrumb("payment charge", category="payment",
                                  data={"amount": amount, "method": method, "card_last4": card_last4})
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)
        outage = self.faults.get("payment-errors") if self.faults is not None else None
        if outage and self._random.random() < outage:
            if self.errors is not None:
                self.errors.add(1, {"error_type": "payment_gateway"})
            return False
        return self._random.random() >= self.failure_rate
