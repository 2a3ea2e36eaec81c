"""``/metrics``: OTel metrics rendered as Prometheus text or OpenMetrics with exemplars.

The upstream ``opentelemetry-exporter-prometheus`` drops exemplars, and the SDK's exemplar
reservoirs reset at every collect, so a second scraper (or a scrape between two requests) would
see none. This bridge reads the SDK through its own pull reader, converts points into
``prometheus_client`` families, and keeps the last exemplar of each bucket until a newer one
replaces it. Names are emitted exactly as the instruments are named (see ``catalog``).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from opentelemetry.sdk.metrics import Counter, Histogram, ObservableCounter, UpDownCounter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    MetricReader,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.trace import format_span_id, format_trace_id
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    Exemplar,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.utils import floatToGoString

from .guard import guard

_CUMULATIVE = {
    Counter: AggregationTemporality.CUMULATIVE,
    UpDownCounter: AggregationTemporality.CUMULATIVE,
    Histogram: AggregationTemporality.CUMULATIVE,
    ObservableCounter: AggregationTemporality.CUMULATIVE,
}
_ExemplarKey = tuple[str, tuple[tuple[str, str], ...], int]


def _label_name(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in key)


class PullReader(MetricReader):
    """Collects on demand (at scrape time), cumulative like Prometheus expects."""

    def __init__(self) -> None:
        super().__init__(preferred_temporality=_CUMULATIVE)  # type: ignore[arg-type]
        self._latest: MetricsData | None = None

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
                         **kwargs: Any) -> None:
        self._latest = metrics_data

    def pull(self) -> MetricsData | None:
        self._latest = None
        self.collect()
        return self._latest

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


class ExemplarBridge:
    """A ``prometheus_client`` collector over a :class:`PullReader`."""

    def __init__(self, reader: PullReader) -> None:
        self._reader = reader
        self._lock = threading.Lock()
        self._exemplars: dict[_ExemplarKey, Exemplar] = {}

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # one conversion at a time keeps the exemplar cache consistent
            data = self._reader.pull()
            if data is None:
                return iter(())
            families: list[Metric] = []
            for resource_metrics in data.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        with guard("exposition"):
                            family = self._convert(metric.name, metric.description or "", metric.data)
                            if family is not None:
                                families.append(family)
            return iter(families)

    def _convert(self, name: str, doc: str, data: Any) -> Metric | None:
        points = list(data.data_points)
        label_names = sorted({_label_name(k) for p in points for k in (p.attributes or {})})
        if isinstance(data, Sum) and data.is_monotonic:
            family: Metric = CounterMetricFamily(name, doc, labels=label_names)
            for p in points:
                family.add_metric(_values(p.attributes, label_names), p.value)  # type: ignore[attr-defined]
            return family
        if isinstance(data, (Sum, Gauge)):
            family = GaugeMetricFamily(name, doc, labels=label_names)
            for p in points:
                family.add_metric(_values(p.attributes, label_names), p.value)
            return family
        if isinstance(data, HistogramData):
            family = HistogramMetricFamily(name, doc, labels=label_names)
            for p in points:
                values = _values(p.attributes, label_names)
                buckets = self._buckets(name, tuple(zip(label_names, values, strict=True)), p)
                family.add_metric(values, buckets, p.sum)
            return family
        return None

    def _buckets(self, name: str, labels: tuple[tuple[str, str], ...], point: Any) -> list[Any]:
        bounds: Sequence[float] = point.explicit_bounds
        for ex in point.exemplars or ():
            if ex.trace_id is None or ex.span_id is None:
                continue
            index = bisect.bisect_left(bounds, ex.value)
            self._exemplars[(name, labels, index)] = Exemplar(
                {"trace_id": format_trace_id(ex.trace_id), "span_id": format_span_id(ex.span_id)},
                ex.value,
                ex.time_unix_nano / 1e9,
            )
        buckets: list[Any] = []
        cumulative = 0
        edges = [floatToGoString(b) for b in bounds] + ["+Inf"]
        for index, (edge, count) in enumerate(zip(edges, point.bucket_counts, strict=False)):
            cumulative += count
            exemplar = self._exemplars.get((name, labels, index))
            buckets.append((edge, cumulative, exemplar) if exemplar else (edge, cumulative))
        return buckets


def _values(attributes: Any, label_names: Iterable[str]) -> list[str]:
    normal = {_label_name(k): _label_value(v) for k, v in (attributes or {}).items()}
    return [normal.get(n, "") for n in label_names]


def _label_value(value: Any) -> str:
    if isinstance(value, bool):  # the SDK's overflow marker is True; Prometheus spells "true"
        return "true" if value else "false"
    return str(value)


def make_registry(reader: PullReader) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExemplarBridge(reader))  # type: ignore[arg-type]
    return registry


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """Body and content type for an ``Accept`` header (OpenMetrics carries exemplars)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
