"""The FDS's domain metrics (names in otel_setup/catalog.py), recorded once per evaluation.

The four engine-duration histograms are not here: otel_setup derives them from the engine
spans. Quality (TP/FP/TN/FN counters, precision/recall/F1 gauges) follows reviewer feedback;
the gauges are recomputed from the database so that they survive restarts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from otel_setup.catalog import ENGINES

from .evaluator import Outcome
from .latency import LatencyWindow

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


class FdsMetrics:
    def __init__(self, instruments: Any, window: int, sla_seconds: float) -> None:
        self.i = instruments
        self.sla_seconds = sla_seconds
        self.latency = LatencyWindow(window)
        self._quantiles: dict[float, float] = {}  # last values set: a gauge keeps its value
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
        summary = i["fds_evaluation_latency_summary"]
        for q, seconds in self.latency.quantiles().items():
            if self._quantiles.get(q) != seconds:  # most evaluations leave the window's quantiles as they were
                self._quantiles[q] = seconds
                summary.set(seconds, {"quantile": str(q)})
        violated = outcome.duration_s > self.sla_seconds
        if violated:
            i["fds_sla_violations_total"].add(1)
        return violated

    def labelled(self, outcome: str) -> None:
        self.i[_OUTCOME_COUNTERS[outcome]].add(1)

    def set_quality(self, tp: int, fp: int, tn: int, fn: int) -> None:
        """Set the gauges once any label exists. A ratio without a denominator yet (no flagged
        transaction labelled, or no fraud) reads 1.0, "no error seen", so that every gauge
        exists for dashboards and the precision alert never fires on an empty denominator."""
        if not tp + fp + tn + fn:
            return
        precision, recall, _ = quality(tp, fp, fn)
        precision = 1.0 if precision is None else precision
        recall = 1.0 if recall is None else recall
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        self.i["fds_precision"].set(precision)
        self.i["fds_recall"].set(recall)
        self.i["fds_f1_score"].set(f1)
