"""OTel instruments built from the catalog, with the views that give them buckets and caps."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from .guard import STATS, guard
from .specs import Kind, MetricSpec


def views(specs: Iterable[MetricSpec], cardinality_limit: int) -> list[View]:
    """One view per catalog metric: explicit buckets for histograms, a series cap for all."""
    out = []
    for spec in specs:
        aggregation = (
            ExplicitBucketHistogramAggregation(spec.buckets) if spec.kind is Kind.HISTOGRAM else None
        )
        out.append(
            View(
                instrument_name=spec.name,
                aggregation=aggregation,
                aggregation_cardinality_limit=cardinality_limit,
            )
        )
    return out


def _self_metric_callback(name: str) -> Any:
    def callback(options: CallbackOptions) -> Sequence[Observation]:
        return [Observation(value, labels) for labels, value in STATS.series(name)]

    return callback


ObservationSource = Callable[[], Iterable[tuple[float, dict[str, str]]]]


class ObservedGauge:
    """A gauge whose series are read at collect time: ``set`` keeps a value per attribute set,
    ``clear`` drops it, so a figure that stopped existing is absent rather than stale.

    ``source``, when given, is called at collect time too, for figures computed from state the
    service keeps (the FDS's latency quantiles from its window): its ``(value, attributes)``
    pairs are reported beside the set values, so the service pays for them once a collect
    instead of on every update. A source that raises is contained and counted (``guard``)."""

    def __init__(self) -> None:
        self._values: dict[tuple[tuple[str, str], ...], float] = {}
        self.source: ObservationSource | None = None

    def set(self, value: float, attributes: dict[str, str] | None = None) -> None:
        self._values[tuple(sorted((attributes or {}).items()))] = float(value)

    def clear(self, attributes: dict[str, str] | None = None) -> None:
        self._values.pop(tuple(sorted((attributes or {}).items())), None)

    def callback(self, options: CallbackOptions) -> Sequence[Observation]:
        observations = [Observation(value, dict(key)) for key, value in list(self._values.items())]
        source = self.source
        if source is not None:
            with guard("observed-gauge"):
                observations += [Observation(value, attributes) for value, attributes in source()]
        return observations


Key = frozenset[tuple[str, Any]]
OVERFLOW: Key = frozenset({("otel.metric.overflow", True)})


class TalliedCounter:
    """A counter kept as plain totals per attribute set, read at collect time through an
    observable counter. ``add`` is the SDK ``Counter``'s, at a fraction of its price: the SDK
    validates, hashes and aggregates every measurement and offers it to an exemplar reservoir
    (several µs an ``add``; a service's request records a handful), where this is one dict
    update under a lock. Counters carry no exemplars here (the SPEC puts them on histogram
    buckets; ``/metrics`` renders none for counters). At most ``limit`` attribute sets are kept,
    the rest counted under ``otel.metric.overflow=true`` as the SDK's cardinality limit does."""

    def __init__(self, limit: int) -> None:
        self._totals: dict[Key, float] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def add(self, amount: float, attributes: Mapping[str, Any] | None = None, context: Any = None) -> None:
        if amount < 0:  # a counter only grows; the SDK drops a negative add too
            return
        key = _key(attributes)
        with self._lock:
            total = self._totals.get(key)
            if total is None and len(self._totals) >= self._limit:
                key, total = OVERFLOW, self._totals.get(OVERFLOW)
            self._totals[key] = (total or 0) + amount

    def callback(self, options: CallbackOptions) -> Sequence[Observation]:
        with self._lock:
            totals = list(self._totals.items())
        return [Observation(total, dict(key)) for key, total in totals]


def _key(attributes: Mapping[str, Any] | None) -> Key:
    if not attributes:
        return frozenset()
    try:
        return frozenset(attributes.items())
    except TypeError:  # a sequence value (allowed by OTel): as a tuple
        return frozenset((k, tuple(v) if isinstance(v, list) else v) for k, v in attributes.items())


class Instruments:
    """Instruments by catalog name; label-less counters start at 0 so they exist on /metrics."""

    def __init__(self, meter: Meter, specs: Iterable[MetricSpec], cardinality_limit: int = 2000) -> None:
        self._by_name: dict[str, Any] = {}
        # In-progress gauges are plain per-label integers read at collect time: two fewer
        # measurements on every request than an up-down counter's +1/-1. A gauge without
        # labels counts under the key "".
        self.in_progress: dict[str, dict[str, int]] = {}
        for spec in specs:
            if spec.kind is Kind.UPDOWN and spec.name.endswith("_in_progress"):
                self._by_name[spec.name] = self._observed(meter, spec)
            elif spec.observed:
                gauge = ObservedGauge()
                meter.create_observable_gauge(spec.name, [gauge.callback], spec.unit, spec.description)
                self._by_name[spec.name] = gauge
            elif spec.kind is Kind.COUNTER and not spec.name.startswith("otel_setup_"):
                tally = TalliedCounter(cardinality_limit)
                meter.create_observable_counter(spec.name, [tally.callback], spec.unit, spec.description)
                if not spec.labels:
                    tally.add(0)
                self._by_name[spec.name] = tally
            else:
                self._by_name[spec.name] = self._create(meter, spec)

    def _observed(self, meter: Meter, spec: MetricSpec) -> Any:
        values = self.in_progress.setdefault(spec.name, {})
        label = spec.labels[0] if spec.labels else None
        if label is None:
            values[""] = 0  # exists on /metrics before the first request, like the counters

        def callback(options: CallbackOptions) -> Sequence[Observation]:
            return [Observation(count, {label: key} if label else {}) for key, count in list(values.items())]

        return meter.create_observable_up_down_counter(spec.name, [callback], spec.unit, spec.description)

    @staticmethod
    def _create(meter: Meter, spec: MetricSpec) -> Any:
        if spec.name.startswith("otel_setup_"):
            return meter.create_observable_counter(
                spec.name, [_self_metric_callback(spec.name)], spec.unit, spec.description
            )
        if spec.kind is Kind.UPDOWN:
            updown = meter.create_up_down_counter(spec.name, spec.unit, spec.description)
            if not spec.labels:
                updown.add(0)
            return updown
        if spec.kind is Kind.GAUGE:
            return meter.create_gauge(spec.name, spec.unit, spec.description)
        return meter.create_histogram(
            spec.name, spec.unit, spec.description,
            explicit_bucket_boundaries_advisory=list(spec.buckets or ()),
        )

    def get(self, name: str) -> Any | None:
        return self._by_name.get(name)

    def __getitem__(self, name: str) -> Any:
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name


class HttpInstruments:
    """The HTTP metrics of one service (``specs.http_metrics``): what the ASGI middleware and
    ``record_http_request`` record into, the only writer of these instruments."""

    def __init__(self, instruments: Instruments, prefix: str) -> None:
        self.requests: TalliedCounter = instruments[f"{prefix}_http_requests_total"]
        self.duration: Histogram = instruments[f"{prefix}_http_request_duration_seconds"]
        self.errors: TalliedCounter = instruments[f"{prefix}_errors_total"]
        self.in_progress: dict[str, int] = instruments.in_progress.get(f"{prefix}_http_requests_in_progress", {})
        # Known label values start at 0 (Prometheus practice: rate() and alerts see the series
        # before the first error rather than an absent metric).
        for error_type in ("http_500", "http_503"):
            self.errors.add(0, {"error_type": error_type})

    def record(self, method: str, route: str, status: int, seconds: float | None) -> None:
        """One request, counted by route template and status, timed when ``seconds`` is given."""
        self.requests.add(1, {"method": method, "endpoint": route, "status_code": str(status)})
        if seconds is not None:
            self.duration.record(seconds, {"method": method, "endpoint": route})
