"""Where the figures come from: the :class:`Source` protocol and the scrape fallback.

A source answers a few questions about one window: counter increases, per-second rates,
histogram quantiles, gauges and exemplars. :class:`ScrapeSource` reads each service's
``/metrics`` directly: its counts are cumulative since each service started and its rates come
from two scrapes ``probe_seconds`` apart. The Prometheus source is in :mod:`.prom`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
from typing import NamedTuple, Protocol

import httpx
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from shopfds.histogram import Histogram, histograms
from shopfds.stack import metrics_token

Matchers = dict[str, str]  # label -> regular expression, fully matched (PromQL ``=~``)
OPENMETRICS = "application/openmetrics-text"


class RawExemplar(NamedTuple):
    seconds: float
    trace_id: str
    span_id: str
    bucket: str
    timestamp: float | None


class Source(Protocol):
    kind: str
    notes: list[str]
    evaluated_at: float
    targets: dict[str, bool]  # service or instance -> answered / up

    def increase(self, metric: str, by: str | None = None, where: Matchers | None = None) -> dict[str, float]: ...

    def rate(self, metric: str, by: str | None = None, where: Matchers | None = None) -> dict[str, float] | None: ...

    def quantiles(self, metric: str, qs: tuple[float, ...], by: str | None = None) -> dict[str, dict[float, float]]: ...

    def gauge(self, metric: str) -> float | None: ...

    def gauge_max(self, metric: str, by: str, where: Matchers | None = None) -> dict[str, float]:
        """The highest value of a gauge per value of label ``by`` (instances reporting one truth)."""
        ...

    def exemplars(self, metric: str, limit: int) -> list[RawExemplar]: ...

    def latency_series(self, metric: str, qs: tuple[float, ...],
                       points: int) -> list[tuple[float, dict[float, float]]] | None: ...


Sample = tuple[str, dict[str, str], float]


def matches(labels: dict[str, str], where: Matchers | None) -> bool:
    return all(re.fullmatch(rx, labels.get(label, "")) for label, rx in (where or {}).items())


def group(samples: Iterable[Sample], metric: str, by: str | None, where: Matchers | None) -> dict[str, float]:
    """Sum the samples named ``metric`` matching ``where``, by the value of label ``by``."""
    out: dict[str, float] = {}
    for name, labels, value in samples:
        if name == metric and matches(labels, where):
            key = labels.get(by, "") if by else ""
            out[key] = out.get(key, 0.0) + value
    return out


def merge(hists: Iterable[dict[str, Histogram]]) -> dict[str, Histogram]:
    """Histograms of several services merged bucket by bucket (same key, same bounds summed)."""
    counts: dict[str, dict[float, float]] = {}
    out: dict[str, Histogram] = {}
    for per_key in hists:
        for key, hist in per_key.items():
            for bound, cumulative in hist.buckets:
                counts.setdefault(key, {})[bound] = counts.get(key, {}).get(bound, 0.0) + cumulative
            out.setdefault(key, Histogram()).exemplars.extend(hist.exemplars)
    for key, bounds in counts.items():
        out[key].buckets = sorted(bounds.items())
    return out


class ScrapeSource:
    """Figures from each service's ``/metrics``: cumulative since start, rates from two scrapes."""

    kind = "scrape"

    def __init__(self, urls: dict[str, str], probe_seconds: float = 1.0, timeout: float = 5.0) -> None:
        self.urls = urls
        self.timeout = timeout
        token = metrics_token()
        self.headers = {"Accept": OPENMETRICS, **({"Authorization": f"Bearer {token}"} if token else {})}
        self.notes: list[str] = ["no Prometheus: figures are cumulative since each service started "
                                 "(scraped from /metrics), not over the --since window"]
        self.targets: dict[str, bool] = {}
        first = self._scrape() if probe_seconds > 0 else None
        started = time.monotonic()
        if first is not None:
            time.sleep(probe_seconds)
        self.texts = self._scrape()
        self.evaluated_at = time.time()
        self.targets = {name: name in self.texts for name in urls}
        self.samples = self._samples(self.texts)
        self._first = self._samples(first) if first is not None else None
        self._elapsed = time.monotonic() - started
        if first is not None:
            self.notes.append(f"rates are measured over {self._elapsed:.1f}s between two scrapes")

    def _scrape(self) -> dict[str, str]:
        texts: dict[str, str] = {}
        for name, url in self.urls.items():
            try:
                response = httpx.get(f"{url.rstrip('/')}/metrics", headers=self.headers, timeout=self.timeout)
                response.raise_for_status()
                texts[name] = response.text
            except httpx.HTTPError as exc:
                if name not in self.targets:
                    self.notes.append(f"{name} at {url} did not answer /metrics ({type(exc).__name__})")
                self.targets[name] = False
        return texts

    @staticmethod
    def _samples(texts: dict[str, str]) -> list[Sample]:
        out: list[Sample] = []
        for text in texts.values():
            for family in text_string_to_metric_families(text):
                out.extend((s.name, dict(s.labels), s.value) for s in family.samples)
        return out

    def increase(self, metric: str, by: str | None = None, where: Matchers | None = None) -> dict[str, float]:
        return group(self.samples, metric, by, where)

    def rate(self, metric: str, by: str | None = None, where: Matchers | None = None) -> dict[str, float] | None:
        if self._first is None or self._elapsed <= 0:
            return None
        before = group(self._first, metric, by, where)
        after = group(self.samples, metric, by, where)
        return {k: max(v - before.get(k, 0.0), 0.0) / self._elapsed for k, v in after.items()}

    def histograms(self, metric: str, by: str | None = None) -> dict[str, Histogram]:
        return merge(histograms(text, metric, by) for text in self.texts.values())

    def quantiles(self, metric: str, qs: tuple[float, ...], by: str | None = None) -> dict[str, dict[float, float]]:
        return {key: {q: hist.quantile(q) for q in qs} for key, hist in self.histograms(metric, by).items()}

    def gauge(self, metric: str) -> float | None:
        values = [v for name, _, v in self.samples if name == metric and not math.isnan(v)]
        return max(values) if values else None  # copies of one figure: as Prometheus's max()

    def gauge_max(self, metric: str, by: str, where: Matchers | None = None) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, labels, value in self.samples:
            if name == metric and matches(labels, where) and not math.isnan(value):
                key = labels.get(by, "")
                out[key] = max(out.get(key, value), value)
        return out

    def exemplars(self, metric: str, limit: int) -> list[RawExemplar]:
        found = [RawExemplar(value, labels.get("trace_id", ""), labels.get("span_id", ""), _le(bound), None)
                 for hist in self.histograms(metric).values() for value, labels, bound in hist.exemplars]
        return top(found, limit)

    def latency_series(self, metric: str, qs: tuple[float, ...],
                       points: int) -> list[tuple[float, dict[float, float]]] | None:
        return None  # one scrape has no history


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


def top(exemplars: Iterable[RawExemplar], limit: int) -> list[RawExemplar]:
    """The ``limit`` slowest exemplars with a trace id, one per (trace, span)."""
    unique = {(e.trace_id, e.span_id): e for e in exemplars if e.trace_id}
    return sorted(unique.values(), key=lambda e: e.seconds, reverse=True)[:limit]
