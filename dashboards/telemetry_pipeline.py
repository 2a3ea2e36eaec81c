"""Telemetry Pipeline (uid ``telemetry-pipeline``): is telemetry getting out, and what is lost?

From the ``otel_setup_*`` self-metrics every service exposes: spans exported, spans dropped (by
exporter and reason), failed exports, telemetry hooks that raised and were contained, and Sentry
events dropped before sending. The pipeline alert fires on any dropped span in 10 minutes.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from otel_setup.catalog import COLLECTOR

from .panels import Q, above, dashboard, neutral, stat, timeseries
from .promql import increase, sum_rate

UID = "telemetry-pipeline"
DESCRIPTION = "What the telemetry layer exported, dropped and failed to send, by service and exporter."
WINDOW = "10m"  # the telemetry-pipeline alert's window
# The collector's own telemetry (job otel-collector in prometheus/prometheus.yml, scraped from
# :8888), named as its Prometheus reader exposes them (otel_setup.catalog.COLLECTOR).
COLLECTOR_METRICS = tuple(spec.name for spec in COLLECTOR)


def build() -> Dashboard:
    loss = above(1)  # any loss is red: the alert fires on > 0
    panels = [
        stat(1, "Spans exported / s", Q(sum_rate("otel_setup_spans_exported_total"), "spans/s"),
             unit="none", thresholds=neutral(), pos=(0, 0, 6, 5)),
        stat(2, f"Spans dropped ({WINDOW})",
             Q(increase("otel_setup_spans_dropped_total", WINDOW, zero=True), "dropped"),
             unit="none", thresholds=loss, pos=(6, 0, 6, 5), description="Queue full, shutdown or scrubber drops."),
        stat(3, f"Export failures ({WINDOW})",
             Q(increase("otel_setup_export_failures_total", WINDOW, zero=True), "failures"),
             unit="none", thresholds=loss, pos=(12, 0, 6, 5)),
        stat(4, f"Sentry events dropped ({WINDOW})",
             Q(increase("otel_setup_sentry_events_dropped_total", WINDOW, zero=True), "dropped"),
             unit="none", thresholds=above(1, bad="orange"), pos=(18, 0, 6, 5),
             description="Below-warning events are dropped by design; scrub errors are not."),
        timeseries(5, "Spans exported by service and exporter",
                   [Q(sum_rate("otel_setup_spans_exported_total", by="job, exporter"), "{{job}} {{exporter}}")],
                   unit="none", pos=(0, 5, 12, 9)),
        timeseries(6, "Spans dropped by exporter and reason",
                   [Q(sum_rate("otel_setup_spans_dropped_total", by="exporter, reason"), "{{exporter}} {{reason}}")],
                   unit="none", thresholds=loss, pos=(12, 5, 12, 9)),
        timeseries(7, "Export failures by exporter",
                   [Q(sum_rate("otel_setup_export_failures_total", by="job, exporter"), "{{job}} {{exporter}}")],
                   unit="none", thresholds=loss, pos=(0, 14, 12, 9)),
        timeseries(8, "Contained telemetry errors by component",
                   [Q(sum_rate("otel_setup_errors_total", by="component"), "{{component}}")],
                   unit="none", pos=(12, 14, 12, 9),
                   description="Telemetry code that raised: logged once, counted, never raised into a request."),
        timeseries(9, "Collector: spans received, refused, exported, failed; traces dropped too early", [
            Q(sum_rate(COLLECTOR_METRICS[0]), "received"),
            Q(sum_rate(COLLECTOR_METRICS[1]), "refused"),
            Q(sum_rate(COLLECTOR_METRICS[2], by="exporter"), "exported {{exporter}}"),
            Q(sum_rate(COLLECTOR_METRICS[3], by="exporter"), "failed {{exporter}}"),
            Q(sum_rate(COLLECTOR_METRICS[4]), "traces dropped too early"),
        ], unit="none", pos=(0, 23, 24, 8),
            description="After tail sampling, exported is a share of received by design; refused, failed "
                        "or dropped too early is loss (alerts Collector Export Failures, Collector Refusing "
                        "Spans, Tail Sampling Dropped Traces Too Early)."),
    ]
    return dashboard(UID, "Telemetry Pipeline", DESCRIPTION, panels)
