"""Metric specs: what a metric is (name, kind, labels, unit, buckets), and the metrics every
service has whatever its domain: HTTP metrics by route template and the telemetry layer's own
health. The instruments and their views are built from specs (``instruments``); a service's
domain metrics are specs too, in ``catalog``, which this module knows nothing of.

Names are the exact Prometheus names in both paths (``/metrics`` and OTLP -> collector ->
Prometheus): histograms of time end in ``_seconds`` with unit ``s`` (the translator does not add
the unit twice); counters end in ``_total``; every other unit is empty.
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


# Latency edges: 0.1 s (the FDS SLA) and 0.2 s (the API target) are bucket edges, so that
# "slower than the target" is a bucket boundary and exemplars sit on slow buckets.
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5)


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


def counter(name: str, desc: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, Kind.COUNTER, desc, labels)


def histogram(name: str, desc: str, *labels: str, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> MetricSpec:
    unit = "s" if name.endswith("_seconds") else ""
    return MetricSpec(name, Kind.HISTOGRAM, desc, labels, unit, buckets)


def gauge(name: str, desc: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, Kind.GAUGE, desc, labels)


def observed(name: str, desc: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, Kind.GAUGE, desc, labels, observed=True)


def updown(name: str, desc: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, Kind.UPDOWN, desc, labels)


def http_metrics(prefix: str) -> tuple[MetricSpec, ...]:
    """The HTTP metrics every service has, named ``<prefix>_http_*`` (SPEC: ecommerce_http_*)."""
    return (
        counter(f"{prefix}_http_requests_total", "HTTP requests by route template",
                "method", "endpoint", "status_code"),
        histogram(f"{prefix}_http_request_duration_seconds", "HTTP request duration", "method", "endpoint"),
        updown(f"{prefix}_http_requests_in_progress", "HTTP requests being served", "method"),
        counter(f"{prefix}_errors_total", "Server errors (5xx and unhandled exceptions)", "error_type"),
    )


# The telemetry layer's own health: what was dropped or failed, so loss is visible.
SELF = (
    counter("otel_setup_spans_dropped_total", "Spans dropped before export", "exporter", "reason"),
    counter("otel_setup_export_failures_total", "Failed export calls", "exporter"),
    counter("otel_setup_spans_exported_total", "Spans exported", "exporter"),
    counter("otel_setup_errors_total", "Telemetry hooks that raised and were contained", "component"),
    # reason: below_warning, scrub_error (before_send); network_error, status_<code>, queue_full,
    # rate_limited (sentry-sdk's transport, see sentry_transport.py).
    counter("otel_setup_sentry_events_dropped_total", "Sentry events dropped or lost on the way", "reason"),
)


@dataclass(frozen=True)
class SpanMetric:
    """Histograms derived from spans (what the collector's spanmetrics connector does, done
    in-process so ``/metrics`` has them without a collector): every span started with
    ``attribute`` feeds ``histograms[value]`` and ``breakdown{label=value}`` with its duration,
    with an exemplar pointing at that span. Such spans are recorded even when head sampling
    drops them (not exported), so the histograms count every span, not only sampled ones."""

    attribute: str
    histograms: dict[str, str]
    breakdown: str
    label: str
    other: str = "other"  # the label value of an attribute value not in ``histograms``


def metric_prefix(service_name: str) -> str:
    """``shopfds-ecommerce`` -> ``ecommerce``; any name becomes a valid metric prefix."""
    name = service_name.lower().removeprefix("shopfds-").removeprefix("shopfds_")
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")
    return cleaned or "app"


UNMATCHED_ROUTE = "unmatched"


class SemconvAttr:
    """Attribute names every service's spans and metrics use."""

    # Stable HTTP and database semantic conventions (the constants of
    # ``opentelemetry-semantic-conventions``): the server span (http_span.py) sets the
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
