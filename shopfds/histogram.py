"""Histogram math on scraped ``/metrics``: quantiles the way Prometheus computes them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.openmetrics.parser import text_string_to_metric_families


@dataclass
class Histogram:
    buckets: list[tuple[float, float]] = field(default_factory=list)  # (upper bound, cumulative)
    exemplars: list[tuple[float, dict[str, str], float]] = field(default_factory=list)

    @property
    def count(self) -> float:
        return self.buckets[-1][1] if self.buckets else 0.0

    def quantile(self, q: float) -> float:
        """Linear interpolation inside the bucket, as PromQL ``histogram_quantile``."""
        if not self.buckets or self.count == 0:
            return math.nan
        rank = q * self.count
        lower_bound, lower_count = 0.0, 0.0
        for bound, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(bound):
                    return lower_bound
                width = cumulative - lower_count
                share = (rank - lower_count) / width if width else 0.0
                return lower_bound + (bound - lower_bound) * share
            lower_bound, lower_count = bound, cumulative
        return lower_bound


def histograms(openmetrics_text: str, name: str, by: str | None = None) -> dict[str, Histogram]:
    """Histograms of one family from OpenMetrics text, merged over all labels but ``by``."""
    out: dict[str, Histogram] = {}
    merged: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(openmetrics_text):
        if family.name != name:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                continue
            key = sample.labels.get(by, "") if by else ""
            bound = float(sample.labels["le"])
            merged.setdefault(key, {})
            merged[key][bound] = merged[key].get(bound, 0.0) + sample.value
            hist = out.setdefault(key, Histogram())
            if sample.exemplar is not None:
                hist.exemplars.append((sample.exemplar.value, dict(sample.exemplar.labels), bound))
    for key, bounds in merged.items():
        out[key].buckets = sorted(bounds.items())
    return out


def slowest_exemplars(hists: Iterable[Histogram], limit: int = 5) -> list[tuple[float, dict[str, Any], float]]:
    every = [e for h in hists for e in h.exemplars]
    return sorted(every, key=lambda e: e[0], reverse=True)[:limit]
