"""The simulated payment gateway: a charge takes ``payment_latency_ms`` and is declined with
probability ``payment_failure_rate`` (both settings). Its time is
``ecommerce_transaction_processing_duration_seconds{transaction_type="payment"}``.

The ``payment-errors`` fault (``/internal/faults``) makes the gateway itself fail that share of
charges, as an outage would: those count as declined payments *and* as
``ecommerce_errors_total{error_type="payment_gateway"}`` (the High Error Rate alert's input).

It is handed only what a real gateway token would carry (method, BIN, last 4, amount): the
shop never holds a card number after validating it.

Like a real gateway, each charge carries an idempotency key (the payment row's ``gateway_key``):
a charge repeated with a key already seen answers the first outcome without charging again, and
``lookup(key)`` tells what became of a charge whose answer the shop lost (None: never received).
The simulated gateway keeps that ledger in the service's cache (Redis when set, so every worker
and a restarted process see it; in-process otherwise) for ``LEDGER_TTL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import otel_setup
from services.common.cache import Cache, MemoryCache
from services.common.faults import Faults

LEDGER_TTL_SECONDS = 7 * 86_400.0


class PaymentGateway:
    def __init__(self, failure_rate: float, latency_ms: float, faults: Faults | None = None,
                 errors: Any = None, ledger: Cache | None = None) -> None:
        self.failure_rate = failure_rate
        self.latency_ms = latency_ms
        self.faults = faults
        self.errors = errors
        self.ledger: Cache = ledger if ledger is not None else MemoryCache()
        self.charges = 0  # charges really made (not answered from the ledger)
        self._random = random.Random()

    async def lookup(self, key: str) -> bool | None:
        """The outcome of the charge made with ``key``: True approved, False declined, None unknown."""
        outcome = await self.ledger.get(f"gateway:charge:{key}")
        return None if outcome is None else outcome == "approved"

    async def charge(self, amount: int, method: str, card_bin: str | None, card_last4: str | None,
                     key: str | None = None) -> bool:
        """True when the charge is approved; with a ``key`` already charged, its first outcome."""
        if key is not None and (known := await self.lookup(key)) is not None:
            return known
        approved = await self._charge(amount, method, card_bin, card_last4)
        if key is not None:
            await self.ledger.set(f"gateway:charge:{key}", "approved" if approved else "declined",
                                  LEDGER_TTL_SECONDS)
        return approved

    @otel_setup.track_transaction_duration("payment")
    async def _charge(self, amount: int, method: str, card_bin: str | None, card_last4: str | None) -> bool:
        self.charges += 1
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
