"""Figures from Prometheus: PromQL over the ``--since`` window, evaluated at one instant.

Every instant query is evaluated at the same ``time`` (``evaluated_at``), so a caller can run
its own PromQL at that instant and get the same numbers. Quantiles are Prometheus's own
``histogram_quantile(q, sum by (le) (increase(<metric>_bucket[window])))``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import httpx

from .sources import Matchers, RawExemplar, top


def reachable(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{url.rstrip('/')}/-/ready", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def duration(seconds: float) -> str:
    """A PromQL duration: ``300s``, or ``1500ms`` for a fractional window."""
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{round(seconds * 1000)}ms"


def selector(metric: str, where: Matchers | None = None) -> str:
    if not where:
        return metric
    inner = ",".join(f'{label}=~"{rx}"' for label, rx in sorted(where.items()))
    return f"{metric}{{{inner}}}"


def _by(*labels: str | None) -> str:
    present = [label for label in labels if label]
    return f" by ({', '.join(present)})" if present else ""


def _float(value: str) -> float:
    return float(value)  # Prometheus spells NaN and +Inf the way float() reads them


class PrometheusSource:
    kind = "prometheus"

    def __init__(self, url: str, window_seconds: float, evaluated_at: float | None = None,
                 urls: dict[str, str] | None = None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.window_seconds = window_seconds
        self.range = duration(window_seconds)
        self.evaluated_at = time.time() if evaluated_at is None else evaluated_at
        self.client = httpx.Client(base_url=self.url, timeout=timeout)
        self.notes: list[str] = [f"Prometheus {self.url}: PromQL over the last {self.range}"]
        self.targets = self._targets(urls or {})
        self._coverage_note()

    def _get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus {path} failed: {body.get('error')}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query at ``evaluated_at``: the vector's samples."""
        return list(self._get("/api/v1/query", query=promql, time=self.evaluated_at)["result"])

    def vector(self, promql: str, by: str | None = None) -> dict[str, float]:
        return {(row["metric"].get(by, "") if by else ""): _float(row["value"][1]) for row in self.query(promql)}

    def _targets(self, urls: dict[str, str]) -> dict[str, bool]:
        names = {u.removeprefix("http://").removeprefix("https://").rstrip("/"): n for n, u in urls.items()}
        up = self.vector("up", by="instance")
        return {names.get(instance, instance): value == 1.0 for instance, value in sorted(up.items())}

    def _coverage_note(self) -> None:
        """Say so when Prometheus has data for only part of the window: rates average over all of it."""
        step = duration(max(round(self.window_seconds / 60), 1))
        first = self.vector(f"min(min_over_time(timestamp(up)[{self.range}:{step}]))")
        covered = self.evaluated_at - first[""] if first else 0.0
        if covered < 0.9 * self.window_seconds:
            self.notes.append(f"Prometheus has data for only the last {covered:.0f}s of the {self.range} window: "
                              "rates are averaged over the whole window")

    def increase(self, metric: str, by: str | None = None, where: Matchers | None = None) -> dict[str, float]:
        return self.vector(f"sum{_by(by)} (increase({selector(metric, where)}[{self.range}]))", by)

    def rate(self, metric: str, by: str | None = None, where: Matchers | None = None) -> dict[str, float] | None:
        return self.vector(f"sum{_by(by)} (rate({selector(metric, where)}[{self.range}]))", by)

    def quantile_query(self, q: float, metric: str, by: str | None = None) -> str:
        return (f"histogram_quantile({q}, sum{_by('le', by)} "
                f"(increase({metric}_bucket[{self.range}])))")

    def quantiles(self, metric: str, qs: tuple[float, ...], by: str | None = None) -> dict[str, dict[float, float]]:
        out: dict[str, dict[float, float]] = {}
        for q in qs:
            for key, value in self.vector(self.quantile_query(q, metric, by), by).items():
                out.setdefault(key, {})[q] = value
        return out

    def gauge(self, metric: str) -> float | None:
        # Every process reports a copy of one database figure (the FDS quality gauges): max, as
        # the dashboards and alerts read it, never an average of copies of different ages.
        values = [v for v in self.vector(f"max({metric})").values() if not math.isnan(v)]
        return values[0] if values else None

    def gauge_max(self, metric: str, by: str, where: Matchers | None = None) -> dict[str, float]:
        return {k: v for k, v in self.vector(f"max by ({by}) ({selector(metric, where)})", by).items()
                if not math.isnan(v)}

    def exemplars(self, metric: str, limit: int) -> list[RawExemplar]:
        data = self._get("/api/v1/query_exemplars", query=f"{metric}_bucket",
                         start=self.evaluated_at - self.window_seconds, end=self.evaluated_at)
        found = [
            RawExemplar(_float(ex["value"]), ex["labels"].get("trace_id", ""), ex["labels"].get("span_id", ""),
                        series["seriesLabels"].get("le", ""), float(ex["timestamp"]))
            for series in data or [] for ex in series.get("exemplars", [])
        ]
        return top(found, limit)

    def latency_series(self, metric: str, qs: tuple[float, ...],
                       points: int) -> list[tuple[float, dict[float, float]]] | None:
        """``histogram_quantile`` over time, ~``points`` steps; each point rates over 4 steps (>= 30 s)."""
        step = max(self.window_seconds / points, 1.0)
        smoothing = duration(max(round(4 * step), 30))
        rows: dict[float, dict[float, float]] = {}
        for q in qs:
            promql = f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket[{smoothing}])))"
            data = self._get("/api/v1/query_range", query=promql, start=self.evaluated_at - self.window_seconds,
                             end=self.evaluated_at, step=step)
            for series in data["result"]:
                for stamp, value in series["values"]:
                    if not math.isnan(_float(value)):
                        rows.setdefault(float(stamp), {})[q] = _float(value)
        return sorted(rows.items())

    def close(self) -> None:
        self.client.close()
