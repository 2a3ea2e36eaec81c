"""The one catalog of metric and attribute names (SPEC.md "Metric catalog").

Dashboards, alert rules, services and tests import names from here. Each metric name is the
exact Prometheus name in both paths: ``/metrics`` and OTLP -> collector -> Prometheus. For that:
histograms of time end in ``_seconds`` with unit ``s`` (the translator does not add the unit
twice); counters end in ``_total``; every other unit is empty so the translator appends nothing.
"""

from __future__ import annotations

from .specs import (
    LATENCY_BUCKETS,
    SELF,
    Kind,
    MetricSpec,
    SemconvAttr,
    SpanMetric,
    http_metrics,
    metric_prefix,
)
from .specs import counter as _c
from .specs import gauge as _g
from .specs import histogram as _h
from .specs import observed as _o
from .specs import updown as _u

__all__ = ["LATENCY_BUCKETS", "SELF", "Kind", "MetricSpec", "SemconvAttr", "SpanMetric", "http_metrics",
           "metric_prefix"]


# Engine budgets from the seed: rule 30 ms, ML 40 ms, CTI 50 ms.
ENGINE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0)
RISK_SCORE_BUCKETS = tuple(float(x) for x in range(10, 101, 10))
FDS_SLA_SECONDS = 0.1
# Seed troubleshooting: an engine slower than its budget is the bottleneck. The FDS's default
# timeouts (services/fds/settings.py), the report's checks and the dashboards read these.
ENGINE_BUDGETS_SECONDS = {"rule": 0.030, "ml": 0.040, "cti": 0.050}
# Alert thresholds (prometheus/rules/alerts.yml) that the dashboards and the report draw too.
PRECISION_ALERT = 0.8  # "FDS Precision Drop": windowed precision below it for 10 minutes (goal 0.9)
CACHE_HIT_TARGET = 0.8  # SPEC: ecommerce_cache_hit_ratio target >= 0.8
SLA_VIOLATIONS_ALERT = 100  # "FDS SLA Violation": increase(fds_sla_violations_total[5m]) above it
API_P95_TARGET_SECONDS = 0.2
ENGINES = ("rule", "ml", "cti")


ECOMMERCE = http_metrics("ecommerce") + (
    _c("ecommerce_transactions_total", "Payment transactions by outcome", "status"),
    _c("ecommerce_transaction_amount_total", "Amount of completed transactions, KRW"),
    _h("ecommerce_transaction_processing_duration_seconds", "Transaction processing time", "transaction_type"),
    _c("ecommerce_orders_total", "Orders by status reached", "status"),
    _c("ecommerce_order_items_total", "Items in created orders"),
    _c("ecommerce_payments_total", "Payments by status and method", "status", "payment_method"),
    _c("ecommerce_payment_amount_total", "Amount of successful payments, KRW"),
    _c("ecommerce_user_registrations_total", "User registrations"),
    _c("ecommerce_user_logins_total", "Login attempts", "result"),
    _g("ecommerce_active_users", "Users with a session active in the last 15 minutes"),
    _c("ecommerce_cache_operations_total", "Cache operations", "operation", "result"),
    _g("ecommerce_cache_hit_ratio", "Cache hit ratio 0.0-1.0 (target >= 0.8)"),
    _c("ecommerce_fds_evaluations_total", "FDS evaluations requested by ecommerce", "result"),
    # step: verdict, payment_row, payment_result, verify; outcome: processing, cancelled, review.
    _c("ecommerce_orders_reconciled_total", "Orders left pending by a failure that the reconciler settled",
       "step", "outcome"),
    _h("ecommerce_fds_evaluation_duration_seconds", "FDS evaluation time seen by ecommerce"),
)

FDS = http_metrics("fds") + (
    _c("fds_evaluations_total", "Evaluations by risk level and decision", "risk_level", "decision"),
    _h("fds_evaluation_duration_seconds", "Evaluation time (SLA 0.1 s)"),
    # quantile: 0.5, 0.9, 0.95, 0.99, computed from the FDS's window when metrics are collected
    # (services/fds/metrics.py), not at every evaluation; absent while the window is empty.
    _o("fds_evaluation_latency_summary", "Evaluation latency quantiles over a sliding window, seconds", "quantile"),
    _u("fds_evaluations_in_progress", "Evaluations running"),
    _c("fds_sla_violations_total", "Evaluations slower than 100 ms"),
    # reason: the bounded degraded_reason parts (ml_unavailable, cti_provider_open, aggregates_fallback, ...).
    _c("fds_degraded_evaluations_total", "Evaluations decided without an engine or its data, by reason", "reason"),
    # reason: queue_full (SHOPFDS_WRITE_MAX_PENDING rows already waiting), shutdown (still waiting at exit).
    _c("fds_evaluation_writes_dropped_total", "Evaluations answered whose row was never written", "reason"),
    _h("fds_risk_score_distribution", "Risk score 0-100", buckets=RISK_SCORE_BUCKETS),
    _c("fds_risk_factors_triggered_total", "Risk factors triggered", "factor"),
    _c("fds_risk_level_distribution_total", "Evaluations by risk level", "risk_level"),
    _h("fds_rule_engine_duration_seconds", "Rule engine time (span-derived)", buckets=ENGINE_BUCKETS),
    _h("fds_ml_engine_duration_seconds", "ML engine time (span-derived)", buckets=ENGINE_BUCKETS),
    _h("fds_cti_engine_duration_seconds", "CTI engine time (span-derived)", buckets=ENGINE_BUCKETS),
    _h("fds_engine_breakdown_seconds", "Engine time by engine (span-derived)", "engine", buckets=ENGINE_BUCKETS),
    _c("fds_true_positives_total", "Fraud correctly flagged"),
    _c("fds_false_positives_total", "Legitimate flagged as fraud"),
    _c("fds_true_negatives_total", "Legitimate correctly approved"),
    _c("fds_false_negatives_total", "Fraud approved"),
    # Quality from the labeled evaluations in the database (one source of truth for every FDS
    # process), absent while its denominator is zero. Lifetime, and over the labels of the last
    # SHOPFDS_QUALITY_WINDOW_SECONDS (an hour) so that a recent drop shows and alerts.
    _o("fds_precision", "TP / (TP + FP), every label"),
    _o("fds_recall", "TP / (TP + FN), every label"),
    _o("fds_f1_score", "Harmonic mean of precision and recall, every label"),
    _o("fds_precision_windowed", "TP / (TP + FP) over the labels of the quality window"),
    _o("fds_recall_windowed", "TP / (TP + FN) over the labels of the quality window"),
    _o("fds_f1_score_windowed", "Harmonic mean of the windowed precision and recall"),
    # window: lifetime | recent; outcome: tp | fp | tn | fn. The n behind the ratios (0: no data).
    _o("fds_quality_labels", "Labeled evaluations behind the quality gauges", "window", "outcome"),
    _c("fds_decisions_total", "Decisions", "decision"),
    _c("fds_blocked_transactions_total", "Blocked transactions by reason", "reason"),
    _c("fds_additional_auth_required_total", "Transactions sent to additional authentication"),
)

ML = http_metrics("ml") + (
    _c("ml_model_trainings_total", "Model trainings by result", "algorithm", "result"),
    _h("ml_model_training_duration_seconds", "Model training time",
       buckets=(0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)),
    _g("ml_model_auc", "Holdout ROC AUC of the deployed model"),
    _g("ml_model_precision", "Holdout precision of the deployed model"),
    _g("ml_model_recall", "Holdout recall of the deployed model"),
    _g("ml_model_deployed_version", "Version number of the deployed model"),
    _c("ml_model_deployments_total", "Model deployments"),
    _c("ml_predictions_total", "Scores served over HTTP", "result"),
    _h("ml_prediction_duration_seconds", "Time to score one transaction", buckets=ENGINE_BUCKETS),
)
ADMIN = http_metrics("admin") + (
    _c("admin_logins_total", "Admin login attempts", "result"),
    _c("admin_reviews_resolved_total", "Held transactions resolved by a reviewer", "decision", "is_fraud"),
    _g("admin_review_queue_size", "Held transactions waiting for review (at the last listing)"),
    _h("admin_review_age_seconds", "Time from hold to resolution",
       buckets=(60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)),
)

# The collector's own telemetry (otelcol-contrib 0.135.0, scraped from :8888, job otel-collector),
# as Prometheus sees it: mdatagen's otelcol_ prefix, _total on counters (the reader in
# collector/otelcol-config.yaml sets without_type_suffix: false), no unit suffix ({spans} and
# {traces} are annotations). Not emitted by the services, so not in ALL.
COLLECTOR = (
    _c("otelcol_receiver_accepted_spans_total", "Spans the receiver pushed into the pipeline", "receiver"),
    _c("otelcol_receiver_refused_spans_total", "Spans the receiver could not push (memory_limiter)", "receiver"),
    _c("otelcol_exporter_sent_spans_total", "Spans sent by an exporter", "exporter"),
    _c("otelcol_exporter_send_failed_spans_total", "Spans in failed attempts to send", "exporter"),
    _c("otelcol_processor_tail_sampling_sampling_trace_dropped_too_early_total",
       "Traces evicted from tail sampling before their decision (num_traces exceeded)"),
)

BY_SERVICE: dict[str, tuple[MetricSpec, ...]] = {
    "ecommerce": ECOMMERCE,
    "fds": FDS,
    "ml": ML,
    "admin": ADMIN,
}

ALL: dict[str, MetricSpec] = {
    spec.name: spec for group in (*BY_SERVICE.values(), SELF) for spec in group
}



def specs_for(service_name: str) -> tuple[MetricSpec, ...]:
    prefix = metric_prefix(service_name)
    return BY_SERVICE.get(prefix, http_metrics(prefix)) + SELF


# Span and resource attribute names shared by services, processors and the collector config.
# ``fds.engine`` is an attribute, so it is not also a namespace: an engine span's own score and
# run status are ``fds.score`` and ``fds.status`` (OTel attribute naming rules).
class Attr(SemconvAttr):
    FDS_ENGINE = "fds.engine"
    FDS_SCORE = "fds.score"
    FDS_STATUS = "fds.status"
    FDS_TRANSACTION_ID = "fds.transaction_id"
    FDS_RISK_SCORE = "fds.risk_score"
    FDS_RISK_LEVEL = "fds.risk_level"
    FDS_DECISION = "fds.decision"
    FDS_DEGRADED = "fds.degraded"
    FDS_REPLAYED = "fds.replayed"  # a retry answered with the first answer
    FDS_DURATION_MS = "fds.duration_ms"
    FDS_SLA_VIOLATION = "fds.sla_violation"
    FDS_AGGREGATES_STATUS = "fds.aggregates.status"
    SENTRY_OP = "sentry.op"


ENGINE_SPAN_PREFIX = "fds.engine."
# The FDS engine spans feed the per-engine histograms (``SpanMetric``): the evaluator makes
# them with ``engine_span``, and the sampler and the processor match on the same attribute.
ENGINE_SPAN_METRIC = SpanMetric(
    attribute=Attr.FDS_ENGINE,
    histograms={engine: f"fds_{engine}_engine_duration_seconds" for engine in ENGINES},
    breakdown="fds_engine_breakdown_seconds",
    label="engine",
)
SPAN_METRICS_BY_SERVICE: dict[str, tuple[SpanMetric, ...]] = {"fds": (ENGINE_SPAN_METRIC,)}


def engine_span(engine: str) -> tuple[str, dict[str, str]]:
    """The name and start attributes of an FDS engine's span: ``fds.engine.<engine>`` with
    ``fds.engine=<engine>``, the attribute its duration histograms are derived from."""
    return f"{ENGINE_SPAN_PREFIX}{engine}", {ENGINE_SPAN_METRIC.attribute: engine}


def span_metrics_for(service_name: str) -> tuple[SpanMetric, ...]:
    return SPAN_METRICS_BY_SERVICE.get(metric_prefix(service_name), ())
