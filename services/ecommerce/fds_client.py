"""The call to the FDS before a payment, and the fail policy when it cannot answer.

``POST {fds_url}/v1/fds/evaluate`` through the traced client (one trace across both services),
bounded by ``fds_timeout`` as a whole (httpx's own timeouts are per read/write, and an
in-process transport has none). A timeout, a connection error, an error status or an answer that
is not an ``Evaluation`` all mean "no verdict": the order gets ``fds_fail_policy`` (hold by
default) with ``degraded`` set, and ``ecommerce_fds_evaluations_total{result="error"}`` counts
it; otherwise ``result`` is the FDS decision.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ValidationError

import otel_setup
from services.common.http import RETRY_HEADER

from .metrics import ShopMetrics

log = logging.getLogger("services.ecommerce.fds")
UNAVAILABLE = "fds_unavailable"


class Evaluation(BaseModel):
    """The part of the FDS ``Evaluation`` the shop keeps on the order."""

    transaction_id: str
    decision: Literal["approve", "additional_auth", "hold", "block"]
    risk_score: float
    risk_level: str
    risk_factors: list[str] = []
    degraded: bool = False


class FdsClient:
    def __init__(self, http: httpx.AsyncClient, timeout: float, fail_policy: str, metrics: ShopMetrics) -> None:
        self.http = http
        self.timeout = timeout
        self.fail_policy = fail_policy
        self.metrics = metrics

    async def evaluate(self, transaction: dict[str, Any], *, retry: bool = False) -> dict[str, Any]:
        """The verdict stored on the order: ``{transaction_id, decision, risk_score, ...}``.

        ``retry``: this transaction may have been asked for before (the reconciler): the FDS
        answers its first verdict from its table even when its cache lost the replay marker."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.http.post("/v1/fds/evaluate", json=transaction,
                                                headers={RETRY_HEADER: "true"} if retry else None)
            response.raise_for_status()
            verdict = Evaluation.model_validate(response.json())
        except (httpx.HTTPError, TimeoutError, ValueError, ValidationError) as exc:
            self.metrics.fds("error", time.perf_counter() - started)
            self._report(exc, transaction)
            return self.fallback(transaction["transaction_id"])
        self.metrics.fds(verdict.decision, time.perf_counter() - started)
        otel_setup.add_breadcrumb("fds verdict", category="fds",
                                  data={"decision": verdict.decision, "risk_score": verdict.risk_score})
        return verdict.model_dump()

    def fallback(self, transaction_id: str) -> dict[str, Any]:
        return {"transaction_id": transaction_id, "decision": self.fail_policy, "risk_score": None,
                "risk_level": None, "risk_factors": [UNAVAILABLE], "degraded": True}

    def _report(self, exc: Exception, transaction: dict[str, Any]) -> None:
        log.warning("FDS evaluation failed (%s); fail policy %s", type(exc).__name__, self.fail_policy)
        otel_setup.add_breadcrumb("fds unavailable", category="fds", level="warning",
                                  data={"error": type(exc).__name__, "policy": self.fail_policy})
        # An outage (timeout, refused connection) shows on the error counter and the FDS's own
        # alerts; an FDS that answers wrongly is a bug worth an event.
        if not isinstance(exc, httpx.TransportError | TimeoutError):
            otel_setup.capture_exception_with_context(
                exc, user_id=transaction.get("user_id"), transaction_id=transaction["transaction_id"],
                order_id=transaction.get("order_id"), component="fds_client")
