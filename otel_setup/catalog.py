"""The one catalog of metric and attribute names (SPEC.md "Metric catalog").

Dashboards, alert rules, services and tests import names from here. Each metric name is the
exact Prometheus name in both paths: ``/metrics`` and OTLP -> collector -> Prometheus. For that:
histograms of time end in ``_seconds`` with unit ``s`` (the translator does not add the unit
twice); counters end in ``_total``; every other unit is empty so the translator appends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from opentelemetry.semconv.attributes import (
    client_attributes,
    db_attributes,
    error_attributes,
    http_attributes,
    network_attributes,
    server_attributes,
    url_attributes,
    user_agent_attributes,
)


class Kind(StrEnum):
    COUNTER = "counter"
    UPDOWN = "updown"  # exposed as a Prometheus gauge
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


# Latency edges: 0.1 s is the FDS SLA, 0.2 s the API target; both must be bucket edges so
# that "slower than the SLA" is a bucket boundary and exemplars sit on slow buckets.
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5)
# Engine budgets from the seed: rule 30 ms, ML 40 ms, CTI 50 ms.
ENGINE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0)
RISK_SCORE_BUCKETS = tuple(float(x) for x in range(10, 101, 10))
FDS_SLA_SECONDS = 0.1
API_P95_TARGET_SECONDS = 0.2
ENGINES = ("rule", "ml", "cti")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: Kind
    description: str
    labels: tuple[str, ...] = ()
    unit: str = ""
    buckets: tuple[float, ...] | None = None
    # A gauge read at collect time from what the service last computed (``ObservedGauge``): a
    # series the service clears is absent from the next scrape instead of keeping a stale value.
    observed: bool = False


def _c(name: str, desc: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, Kind.COUNTER, desc, labels)


def _h(name: str, desc: str, *labels: str, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> MetricSpec:
    unit = "s" if name.endswith("_seconds") else ""
    return MetricSpec(name, Kind.HISTOGRAM, desc, labels, unit, buckets)


def _g(name: str, desc: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, Kind.GAUGE, desc, labels)


def _o(name: str, desc: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, Kind.GAUGE, desc, labels, observed=True)


def _u(name: str, desc: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, Kind.UPDOWN, desc, labels)


def http_metrics(prefix: str) -> tuple[MetricSpec, ...]:
    """The HTTP metrics every service has, named ``<prefix>_http_*`` (SPEC: ecommerce_http_*)."""
    return (
        _c(f"{prefix}_http_requests_total", "HTTP requests by route template", "method", "endpoint", "status_code"),
        _h(f"{prefix}_http_request_duration_seconds", "HTTP request duration", "method", "endpoint"),
        _u(f"{prefix}_http_requests_in_progress", "HTTP requests being served", "method"),
        _c(f"{prefix}_errors_total", "Server errors (5xx and unhandled exceptions)", "error_type"),
    )


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
    _g("fds_evaluation_latency_summary", "Evaluation latency quantiles over a sliding window, seconds", "quantile"),
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

# The telemetry layer's own health: what was dropped or failed, so loss is visible.
SELF = (
    _c("otel_setup_spans_dropped_total", "Spans dropped before export", "exporter", "reason"),
    _c("otel_setup_export_failures_total", "Failed export calls", "exporter"),
    _c("otel_setup_spans_exported_total", "Spans exported", "exporter"),
    _c("otel_setup_errors_total", "Telemetry hooks that raised and were contained", "component"),
    # reason: below_warning, scrub_error (before_send); network_error, status_<code>, queue_full,
    # rate_limited (sentry-sdk's transport, see sentry_transport.py).
    _c("otel_setup_sentry_events_dropped_total", "Sentry events dropped or lost on the way", "reason"),
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


def metric_prefix(service_name: str) -> str:
    """``shopfds-ecommerce`` -> ``ecommerce``; any name becomes a valid metric prefix."""
    name = service_name.lower().removeprefix("shopfds-").removeprefix("shopfds_")
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")
    return cleaned or "app"


def specs_for(service_name: str) -> tuple[MetricSpec, ...]:
    prefix = metric_prefix(service_name)
    return BY_SERVICE.get(prefix, http_metrics(prefix)) + SELF


# Span and resource attribute names shared by services, processors and the collector config.
# ``fds.engine`` is an attribute, so it is not also a namespace: an engine span's own score and
# run status are ``fds.score`` and ``fds.status`` (OTel attribute naming rules).
class Attr:
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
    # Stable HTTP and database semantic conventions (the constants of
    # ``opentelemetry-semantic-conventions``): otel_setup's server span (http_span.py) sets the
    # HTTP ones as the contrib ASGI middleware would, otel_setup.semconv opts the contrib client,
    # SQL and Redis instrumentations in; the collector's span metrics and `shopfds trace` read them.
    HTTP_REQUEST_METHOD = http_attributes.HTTP_REQUEST_METHOD
    HTTP_REQUEST_METHOD_ORIGINAL = http_attributes.HTTP_REQUEST_METHOD_ORIGINAL
    HTTP_ROUTE = http_attributes.HTTP_ROUTE
    HTTP_RESPONSE_STATUS_CODE = http_attributes.HTTP_RESPONSE_STATUS_CODE
    URL_PATH = url_attributes.URL_PATH
    URL_QUERY = url_attributes.URL_QUERY
    URL_SCHEME = url_attributes.URL_SCHEME
    URL_FULL = url_attributes.URL_FULL
    SERVER_ADDRESS = server_attributes.SERVER_ADDRESS
    SERVER_PORT = server_attributes.SERVER_PORT
    CLIENT_ADDRESS = client_attributes.CLIENT_ADDRESS
    CLIENT_PORT = client_attributes.CLIENT_PORT
    USER_AGENT_ORIGINAL = user_agent_attributes.USER_AGENT_ORIGINAL
    NETWORK_PROTOCOL_VERSION = network_attributes.NETWORK_PROTOCOL_VERSION
    ERROR_TYPE = error_attributes.ERROR_TYPE
    DB_SYSTEM_NAME = db_attributes.DB_SYSTEM_NAME
    DB_NAMESPACE = db_attributes.DB_NAMESPACE
    DB_QUERY_TEXT = db_attributes.DB_QUERY_TEXT
    OVERFLOW_LABEL = "otel_metric_overflow"


ENGINE_SPAN_PREFIX = "fds.engine."
UNMATCHED_ROUTE = "unmatched"
