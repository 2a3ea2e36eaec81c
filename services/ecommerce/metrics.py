"""The ecommerce domain metrics (catalog group ECOMMERCE), one method per business event.

Label values are fixed vocabularies (statuses, methods, decisions), never ids.
"""

from __future__ import annotations

import otel_setup


class ShopMetrics:
    def __init__(self, telemetry: otel_setup.Telemetry) -> None:
        self._telemetry = telemetry
        self._i = telemetry.instruments
        self._lookups = 0
        self._hits = 0

    def _add(self, name: str, value: float = 1, labels: dict[str, str] | None = None) -> None:
        self._i[name].add(value, labels or {})

    def registration(self) -> None:
        self._add("ecommerce_user_registrations_total")

    def login(self, ok: bool) -> None:
        self._add("ecommerce_user_logins_total", labels={"result": "success" if ok else "failed"})

    def active_users(self, count: int) -> None:
        self._i["ecommerce_active_users"].set(count)

    def cache(self, operation: str, result: str) -> None:
        self._add("ecommerce_cache_operations_total", labels={"operation": operation, "result": result})
        if operation == "get" and result in ("hit", "miss"):
            self._lookups += 1
            self._hits += result == "hit"
            self._i["ecommerce_cache_hit_ratio"].set(self._hits / self._lookups)

    def order_status(self, status: str) -> None:
        """An order reached ``status`` (pending on creation, then each transition)."""
        self._add("ecommerce_orders_total", labels={"status": status})

    def order_items(self, quantity: int) -> None:
        self._add("ecommerce_order_items_total", quantity)

    def payment(self, status: str, method: str, amount: int) -> None:
        """A payment attempt: the payment metrics here, the transaction through the seed's
        ``record_transaction`` (the one writer of the transaction metrics)."""
        self._add("ecommerce_payments_total", labels={"status": status, "payment_method": method})
        if status == "succeeded":
            self._add("ecommerce_payment_amount_total", amount)
        otel_setup.record_transaction("completed" if status == "succeeded" else "failed", amount,
                                      telemetry=self._telemetry)

    def blocked(self, amount: int) -> None:
        """A transaction the FDS (or a reviewer) stopped before any payment."""
        otel_setup.record_transaction("blocked", amount, telemetry=self._telemetry)

    def fds(self, result: str, duration: float) -> None:
        otel_setup.record_fds_evaluation(result, duration, telemetry=self._telemetry)

    def checkout_duration(self, seconds: float) -> None:
        otel_setup.observe_transaction_duration("checkout", seconds, telemetry=self._telemetry)
