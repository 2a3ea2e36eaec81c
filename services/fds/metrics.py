"""The FDS's domain metrics (names in otel_setup/catalog.py), recorded once per evaluation.

The latency quantiles (``fds_evaluation_latency_summary``) are computed from the sliding window
when metrics are collected, not at every evaluation (a pass over the window's ~280 buckets each
time): the gauge reads the window of the ``FdsMetrics`` that last took an evaluation, so two FDS
apps in one process (one ``Instruments``) never report a mix of their windows.

The four engine-duration histograms are not here: otel_setup derives them from the engine
spans. Quality follows reviewer feedback: the TP/FP/TN/FN counters count the labels this process
received (Prometheus sums them over processes); the precision/recall/F1 gauges, lifetime and
over the quality window, and ``fds_quality_labels`` (the n behind them) are computed from the
labeled evaluations in the database, the one source of truth of every FDS process: each process
re-reads them every ``quality_refresh_seconds`` and right after a label it received, so N
workers report the same figures. A ratio whose denominator is zero is absent, never 1.0.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from otel_setup.catalog import ENGINES
from otel_setup.instruments import Instruments
from services.common.tasks import stop

from . import store
from .evaluator import Outcome
from .latency import LatencyWindow

log = logging.getLogger("services.fds.metrics")

_OUTCOME_COUNTERS = {"tp": "fds_true_positives_total", "fp": "fds_false_positives_total",
                     "tn": "fds_true_negatives_total", "fn": "fds_false_negatives_total"}
# Every reason the evaluator and aggregator give, each series at 0 from the start: a rate() over a
# series that first appears in the middle of an outage would miss that outage's first increment.
DEGRADED_REASONS = (*(f"{engine}_{status}" for engine in ENGINES for status in ("timeout", "error", "unavailable")),
                    "cti_provider_timeout", "cti_provider_error", "cti_provider_open",
                    "aggregates_timeout", "aggregates_error", "aggregates_fallback")


def quality(tp: int, fp: int, fn: int) -> tuple[float | None, float | None, float | None]:
    """(precision, recall, f1); None where the denominator is still zero."""
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        return precision, recall, None
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _quantile_series(window: LatencyWindow) -> Callable[[], list[tuple[float, dict[str, str]]]]:
    """The summary gauge's series, computed when metrics are collected: none while the window
    is empty. Holds the window only, not the ``FdsMetrics`` (nor its app) around it."""

    def series() -> list[tuple[float, dict[str, str]]]:
        return [(seconds, {"quantile": str(q)}) for q, seconds in window.quantiles().items()]

    return series


class FdsMetrics:
    def __init__(self, instruments: Instruments, window: int, sla_seconds: float,
                 quality_window_seconds: float = 3600.0) -> None:
        self.i = instruments
        self.sla_seconds = sla_seconds
        self.quality_window = timedelta(seconds=quality_window_seconds)
        self.latency = LatencyWindow(window)
        self._summary = instruments["fds_evaluation_latency_summary"]  # an ObservedGauge
        self._observe_latency = _quantile_series(self.latency)  # one function: ``is`` tells whose window is read
        self._refresher: asyncio.Task[None] | None = None
        for reason in DEGRADED_REASONS:
            instruments["fds_degraded_evaluations_total"].add(0, {"reason": reason})

    @contextmanager
    def in_progress(self) -> Iterator[None]:
        counts = self.i.in_progress["fds_evaluations_in_progress"]  # read at collect time
        counts[""] += 1
        try:
            yield
        finally:
            counts[""] -= 1

    def evaluated(self, outcome: Outcome) -> bool:
        """Record one new evaluation; True when it broke the SLA."""
        ev, i = outcome.evaluation, self.i
        i["fds_evaluations_total"].add(1, {"risk_level": ev.risk_level, "decision": ev.decision})
        i["fds_evaluation_duration_seconds"].record(outcome.duration_s)
        i["fds_risk_score_distribution"].record(ev.risk_score)
        i["fds_risk_level_distribution_total"].add(1, {"risk_level": ev.risk_level})
        i["fds_decisions_total"].add(1, {"decision": ev.decision})
        for reason in outcome.verdict.degraded_reasons:  # engine x status and fixed names: bounded
            i["fds_degraded_evaluations_total"].add(1, {"reason": reason})
        for factor in ev.risk_factors:  # factor names come from the rule book and code: bounded
            i["fds_risk_factors_triggered_total"].add(1, {"factor": factor})
        if ev.decision == "block":
            i["fds_blocked_transactions_total"].add(1, {"reason": outcome.verdict.blocked_reason or "risk_score"})
        elif ev.decision == "additional_auth":
            i["fds_additional_auth_required_total"].add(1)
        self.latency.add(outcome.duration_s)
        if self._summary.source is not self._observe_latency:  # this window is the one /metrics reads
            self._summary.source = self._observe_latency
        violated = outcome.duration_s > self.sla_seconds
        if violated:
            i["fds_sla_violations_total"].add(1)
        return violated

    def labelled(self, outcome: str) -> None:
        self.i[_OUTCOME_COUNTERS[outcome]].add(1)

    async def refresh_quality(self, session: AsyncSession) -> None:
        """Quality gauges from the labeled evaluations in the database: lifetime and recent."""
        lifetime = await store.confusion(session)
        recent = await store.confusion(session, since=datetime.now(UTC) - self.quality_window)
        self.set_quality(lifetime, "")
        self.set_quality(recent, "_windowed")

    def set_quality(self, c: store.Confusion, suffix: str) -> None:
        window = "recent" if suffix else "lifetime"
        for outcome in ("tp", "fp", "tn", "fn"):
            self.i["fds_quality_labels"].set(getattr(c, outcome), {"window": window, "outcome": outcome})
        figures = dict(zip(("fds_precision", "fds_recall", "fds_f1_score"), quality(c.tp, c.fp, c.fn), strict=True))
        for name, value in figures.items():
            gauge = self.i[name + suffix]
            if value is None:
                gauge.clear()  # no denominator: no figure (absent), never a flattering 1.0
            else:
                gauge.set(value)

    def start_quality_refresh(self, sessions: Callable[[], AbstractAsyncContextManager[AsyncSession]],
                              period: float) -> None:
        self._refresher = asyncio.create_task(self._refresh_every(sessions, period), name="fds-quality-refresh")

    async def _refresh_every(self, sessions: Callable[[], AbstractAsyncContextManager[AsyncSession]],
                             period: float) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                async with sessions() as session:
                    await self.refresh_quality(session)
            except Exception:  # a database hiccup leaves the last figures; the next period retries
                log.warning("quality gauges not refreshed", exc_info=True)

    async def close(self) -> None:
        if self._refresher is not None:
            await stop(self._refresher)
