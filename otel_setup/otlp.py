"""OTLP exporters built from settings: endpoint, protocol, headers and timeout per signal.

Per-signal variables win over the general ones, as in the OTLP exporter spec. With
``http/protobuf`` the general endpoint gets ``/v1/traces`` or ``/v1/metrics`` appended;
a per-signal endpoint is used as is. Malformed headers are reported once and ignored.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import Counter, Histogram, ObservableCounter, UpDownCounter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace.export import SpanExporter

from .backoff import DownGate
from .guard import STATS
from .settings import TelemetrySettings

_CUMULATIVE: dict[type, AggregationTemporality] = {
    Counter: AggregationTemporality.CUMULATIVE,
    UpDownCounter: AggregationTemporality.CUMULATIVE,
    Histogram: AggregationTemporality.CUMULATIVE,
    ObservableCounter: AggregationTemporality.CUMULATIVE,
}


class CountingMetricExporter(MetricExporter):
    """Counts failed metric exports (``otel_setup_export_failures_total{exporter="otlp-metrics"}``):
    a collector that refuses or times out shows on ``/metrics`` instead of only in a log line."""

    def __init__(self, inner: MetricExporter, name: str) -> None:
        # The temporality the inner exporter was built with (``metric_reader``): the reader
        # asks the outermost exporter.
        super().__init__(preferred_temporality=_CUMULATIVE)
        self.inner = inner
        self.name = name
        self.gate = DownGate()

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        if not self.gate.open():  # known down: not encoded, not sent, still a failed export
            STATS.add("otel_setup_export_failures_total", exporter=self.name)
            return MetricExportResult.FAILURE
        try:
            result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception:
            result = MetricExportResult.FAILURE
        _settle(self.gate, result is MetricExportResult.SUCCESS, self.name)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class CountingLogExporter(LogRecordExporter):
    """Counts failed log exports (``otel_setup_export_failures_total{exporter="otlp-logs"}``), as
    spans (``otlp``) and metrics (``otlp-metrics``) are: a collector refusing logs shows on ``/metrics``
    (the Telemetry Pipeline Loss alert), not only in the exporter's log line, which is never exported."""

    def __init__(self, inner: LogRecordExporter, name: str) -> None:
        self.inner = inner
        self.name = name
        self.gate = DownGate()

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        if not self.gate.open():  # known down: not encoded, not sent, still a failed export
            STATS.add("otel_setup_export_failures_total", exporter=self.name)
            return LogRecordExportResult.FAILURE
        try:
            result = self.inner.export(batch)
        except Exception:
            result = LogRecordExportResult.FAILURE
        _settle(self.gate, result is LogRecordExportResult.SUCCESS, self.name)
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()


def _settle(gate: DownGate, ok: bool, name: str) -> None:
    if ok:
        gate.succeeded()
    else:
        gate.failed()
        STATS.add("otel_setup_export_failures_total", exporter=name)


def parse_headers(raw: str | None) -> dict[str, str]:
    """``k=v,k2=v2`` (values URL-encoded) as in the OTLP exporter spec; the settings have
    already dropped (and reported) malformed entries."""
    headers: dict[str, str] = {}
    for item in (raw or "").split(","):
        key, _, value = item.partition("=")
        if key.strip():
            headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


def _endpoint(s: TelemetrySettings, signal: str, protocol: str) -> str | None:
    specific = {"traces": s.otlp_traces_endpoint, "metrics": s.otlp_metrics_endpoint}.get(signal)
    if specific:
        url = specific
    elif s.otlp_endpoint:
        base = s.otlp_endpoint.rstrip("/")
        url = base if protocol == "grpc" else f"{base}/v1/{signal}"
    else:
        return None
    return url  # the settings validated the endpoint it is made of


def _options(s: TelemetrySettings, signal: str) -> tuple[str, str | None, dict[str, str]]:
    protocol = {"traces": s.otlp_traces_protocol, "metrics": s.otlp_metrics_protocol}.get(signal) \
        or s.otlp_protocol
    headers = parse_headers(s.otlp_headers)
    headers.update(parse_headers({"traces": s.otlp_traces_headers, "metrics": s.otlp_metrics_headers}.get(signal)))
    return protocol, _endpoint(s, signal, protocol), headers


_PROTO = "opentelemetry.exporter.otlp.proto"
# (gRPC class, HTTP class) per signal, imported only when used (gRPC is slow to import).
_CLASSES = {
    "traces": (f"{_PROTO}.grpc.trace_exporter:OTLPSpanExporter", f"{_PROTO}.http.trace_exporter:OTLPSpanExporter"),
    "metrics": (f"{_PROTO}.grpc.metric_exporter:OTLPMetricExporter",
                f"{_PROTO}.http.metric_exporter:OTLPMetricExporter"),
    "logs": (f"{_PROTO}.grpc._log_exporter:OTLPLogExporter", f"{_PROTO}.http._log_exporter:OTLPLogExporter"),
}


def _exporter(s: TelemetrySettings, signal: str, **extra: Any) -> Any:
    """The OTLP exporter of ``signal`` for the configured protocol, endpoint, headers and timeout."""
    protocol, endpoint, headers = _options(s, signal)
    if endpoint is None:
        raise ValueError(f"no usable OTLP {signal} endpoint")
    grpc, http = _CLASSES[signal]
    common: dict[str, Any] = {"endpoint": endpoint, "headers": headers, "timeout": s.otlp_timeout_s, **extra}
    if protocol == "grpc":
        return _load(grpc)(insecure=endpoint.startswith("http://"), **common)
    from opentelemetry.exporter.otlp.proto.http import Compression

    return _load(http)(compression=Compression.Gzip, **common)


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def span_exporter(s: TelemetrySettings) -> SpanExporter:
    exporter: SpanExporter = _exporter(s, "traces")
    return exporter


def http_span_exporter(endpoint: str, headers: dict[str, str], timeout: float) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, headers=headers, timeout=timeout,
                            compression=Compression.Gzip)


def log_exporter(s: TelemetrySettings) -> LogRecordExporter:
    """Logs go where traces go (the general endpoint + ``/v1/logs``, or gRPC); failures counted."""
    return CountingLogExporter(_exporter(s, "logs"), "otlp-logs")


def metric_reader(s: TelemetrySettings) -> PeriodicExportingMetricReader:
    exporter = _exporter(s, "metrics", preferred_temporality=_CUMULATIVE)
    return PeriodicExportingMetricReader(
        CountingMetricExporter(exporter, "otlp-metrics"), export_interval_millis=s.metric_export_interval_ms,
        export_timeout_millis=s.otlp_timeout_s * 1000,
    )
