"""FDS Performance (uid ``fds-performance``): is the fraud check fast and right?

Top row: P95 against the 100 ms SLA, throughput, SLA violations, error rate. Then latency
quantiles (exemplars link a slow point to its trace), risk levels, per-engine time (which engine
made it slow), decisions, and model quality against the precision alert.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from otel_setup.catalog import FDS_SLA_SECONDS

from .panels import (
    PRECISION_ALERT,
    SLA_VIOLATIONS_ALERT,
    Q,
    above,
    below,
    dashboard,
    gauge,
    neutral,
    pie,
    stat,
    timeseries,
)
from .promql import average, increase, quantile, sum_rate

UID = "fds-performance"
DESCRIPTION = "FDS evaluation latency against the 100 ms SLA, throughput, engines, decisions, model quality."
LATENCY = "fds_evaluation_duration_seconds"
ENGINE = "fds_engine_breakdown_seconds"
# No error yet means 0 %, not "No data".
ERROR_RATIO = f"({sum_rate('fds_errors_total')} or vector(0)) / {sum_rate('fds_http_requests_total')}"


def build() -> Dashboard:
    sla = above(FDS_SLA_SECONDS)
    panels = [
        gauge(1, "Evaluation P95 vs 100 ms SLA", Q(quantile(0.95, LATENCY), "P95", exemplar=True),
              unit="s", thresholds=sla, max_value=2 * FDS_SLA_SECONDS,
              pos=(0, 0, 6, 6), description="histogram_quantile over fds_evaluation_duration_seconds; SLA 100 ms."),
        stat(2, "Throughput", Q(sum_rate("fds_evaluations_total"), "evaluations/s"),
             unit="reqps", thresholds=neutral(), pos=(6, 0, 6, 6),
             description="Evaluations per second (seed target 1000 TPS)."),
        stat(3, "SLA violations (5m)", Q(increase("fds_sla_violations_total", "5m", zero=True), "over 100 ms"),
             unit="none", thresholds=above(SLA_VIOLATIONS_ALERT), pos=(12, 0, 6, 6),
             description="Evaluations over 100 ms in the last 5 minutes; the FDS SLA Violation alert fires above 100."),
        stat(4, "Error rate", Q(ERROR_RATIO, "errors / requests"),
             unit="percentunit", thresholds=above(0.001), pos=(18, 0, 6, 6),
             description="Server errors over all FDS requests (target < 0.1 %)."),
        timeseries(5, "Evaluation latency P50 / P95 / P99", [
            Q(quantile(0.5, LATENCY), "P50"),
            Q(quantile(0.95, LATENCY), "P95", exemplar=True),
            Q(quantile(0.99, LATENCY), "P99"),
        ], unit="s", thresholds=sla, pos=(0, 6, 16, 9),
            description="Dashed line: the 100 ms SLA. Markers are exemplars: hover one to open its trace."),
        pie(6, "Risk levels", Q(increase("fds_risk_level_distribution_total", "$__range", by="risk_level"),
                                "{{risk_level}}"),
            unit="none", pos=(16, 6, 8, 9), description="Evaluations by risk level over the dashboard range."),
        timeseries(7, "Engine time: average and P95 (rule / ML / CTI)", [
            Q(average(ENGINE, by="engine"), "{{engine}} avg"),
            Q(quantile(0.95, ENGINE, by="engine"), "{{engine}} P95", exemplar=True),
        ], unit="s", thresholds=above(0.03), pos=(0, 15, 12, 9),
            description="Span-derived engine durations. Budgets: rule 30 ms, ML 40 ms, CTI 50 ms "
                        "(dashed line at the tightest, 30 ms). Exemplars point at the engine span."),
        timeseries(8, "Decisions", [Q(sum_rate("fds_decisions_total", by="decision"), "{{decision}}")],
                   unit="reqps", stacked=True, pos=(12, 15, 12, 9),
                   description="approve / additional_auth / hold / block per second."),
        timeseries(9, "Precision / recall / F1", [
            Q("max(fds_precision_windowed)", "precision, last hour"),
            Q("max(fds_recall_windowed)", "recall, last hour"),
            Q("max(fds_precision)", "precision, all labels"),
            Q("max(fds_recall)", "recall, all labels"),
            Q("max(fds_f1_score)", "F1, all labels"),
        ], unit="percentunit", thresholds=below(PRECISION_ALERT), min_value=0, max_value=1, pos=(0, 24, 24, 8),
            description="From the labeled evaluations in the FDS database (every FDS process reports the same "
                        "figure): over the labels of the last hour and over all of them; a line is missing "
                        "while its denominator is zero. Additional authentication counts as flagged. The FDS "
                        "Precision Drop alert fires when the last hour's precision is below 0.8 for 10 minutes."),
    ]
    return dashboard(UID, "FDS Performance", DESCRIPTION, panels)
