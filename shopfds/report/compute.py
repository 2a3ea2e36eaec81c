"""From a :class:`~.sources.Source` to :class:`~.figures.Figures`: which metric gives which figure."""

from __future__ import annotations

import math
from pathlib import Path

from otel_setup.catalog import ENGINES

from .figures import Figures
from .links import link
from .sources import Source

QUANTILES = (0.5, 0.95, 0.99)
CHART_POINTS = 60


def _num(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def _one(values: dict[str, float] | None) -> float | None:
    return _num(sum(values.values())) if values else None


def _share(part: float | None, whole: float | None) -> float | None:
    return part / whole if part is not None and whole else None


def _rate_or_zero(values: dict[str, float] | None, tps: float | None) -> float | None:
    """A counter never incremented has no series: 0/s when there is a time base (a known TPS)."""
    return _one(values) if values else (0.0 if tps is not None else None)


def _traffic(src: Source, f: Figures) -> None:
    f.requests = _one(src.increase("ecommerce_http_requests_total"))
    f.tps = _one(src.rate("ecommerce_http_requests_total"))
    # An order is "pending" once, when a checkout creates it.
    f.checkouts_per_s = _rate_or_zero(src.rate("ecommerce_orders_total", where={"status": "pending"}), f.tps)
    f.api_p95 = _num(src.quantiles("ecommerce_http_request_duration_seconds", (0.95,)).get("", {}).get(0.95))
    server_errors = src.increase("ecommerce_http_requests_total", where={"status_code": "5.."})
    f.error_share = _share(_one(server_errors) or 0.0, f.requests)
    f.errors_per_s = _rate_or_zero(src.rate("ecommerce_errors_total"), f.tps)
    # From the counters summed over every process (a ratio of sums, not an average of gauges).
    lookups = src.increase("ecommerce_cache_operations_total", by="result", where={"operation": "get"})
    f.cache_hit_ratio = _share(lookups.get("hit", 0.0), sum(lookups.values())) if lookups else None
    fds_calls = src.increase("ecommerce_fds_evaluations_total", by="result")
    # ecommerce counts an FDS call without a verdict (timeout, error: fail policy applied) as result="error"
    f.degraded = fds_calls.get("error", 0.0) if fds_calls else None


def _fds(src: Source, f: Figures) -> None:
    f.fds_evaluations = _one(src.increase("fds_evaluation_duration_seconds_count"))
    q = src.quantiles("fds_evaluation_duration_seconds", QUANTILES).get("", {})
    f.fds_p50, f.fds_p95, f.fds_p99 = (_num(q.get(x)) for x in QUANTILES)
    engines = src.quantiles("fds_engine_breakdown_seconds", (0.95,), by="engine")
    f.engine_p95 = {e: _num(engines.get(e, {}).get(0.95)) for e in (*ENGINES, *sorted(set(engines) - set(ENGINES)))}
    f.sla_violations = _one(src.increase("fds_sla_violations_total"))
    f.risk_levels = src.increase("fds_risk_level_distribution_total", by="risk_level")
    f.decisions = src.increase("fds_decisions_total", by="decision")


def _quality(src: Source, f: Figures) -> None:
    """The FDS's own gauges and the label counts behind them (from the database, the same in every
    FDS process); from the TP/FP/FN counters when the gauges are not there."""
    f.precision, f.recall, f.f1 = (src.gauge(g) for g in ("fds_precision", "fds_recall", "fds_f1_score"))
    labels = src.gauge_max("fds_quality_labels", "outcome", {"window": "lifetime"})
    if labels:
        tp, fp, fn = (labels.get(n, 0.0) for n in ("tp", "fp", "fn"))
        f.precision_n, f.recall_n = tp + fp, tp + fn
    if f.precision is not None or f.recall is not None or labels:
        return
    tp, fp, fn = (_one(src.increase(f"fds_{n}_total")) or 0.0
                  for n in ("true_positives", "false_positives", "false_negatives"))
    f.precision_n, f.recall_n = tp + fp, tp + fn
    f.precision, f.recall = _share(tp, tp + fp), _share(tp, tp + fn)
    if f.precision is not None and f.recall is not None:
        total = f.precision + f.recall
        f.f1 = 2 * f.precision * f.recall / total if total else 0.0


def _series(src: Source, f: Figures) -> None:
    rows = src.latency_series("fds_evaluation_duration_seconds", QUANTILES, CHART_POINTS)
    if rows is not None:
        f.latency_series = [(t, {f"P{round(q * 100)}": v for q, v in values.items()}) for t, values in rows]


def compute(src: Source, since: str, window_seconds: float, *, sentry_dsn: str | None = None,
            trace_store: Path | None = None, exemplars: int = 5) -> Figures:
    """All figures of the report from one source."""
    f = Figures(source=src.kind, since=since, window_seconds=window_seconds, evaluated_at=src.evaluated_at,
                notes=list(src.notes), targets=dict(src.targets))
    _traffic(src, f)
    _fds(src, f)
    _quality(src, f)
    _series(src, f)
    raw = src.exemplars("fds_evaluation_duration_seconds", exemplars)
    f.exemplars = [link(e, sentry_dsn, trace_store) for e in raw]
    if trace_store is not None and not Path(trace_store).is_dir():
        f.notes.append(f"trace store {trace_store} does not exist")
    return f
