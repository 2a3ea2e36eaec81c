"""The report's figures as typed data: what every renderer (console, HTML) and test reads.

All durations are seconds, rates per second, shares 0.0-1.0; ``None`` means "no data". Checks
against targets are in :mod:`.targets`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_since(since: str) -> float:
    """``"5m"`` -> 300.0 seconds. Units ms, s, m, h, d; at least one second; else ValueError."""
    match = _SINCE.match(since or "")
    if not match:
        raise ValueError(f"invalid --since {since!r}: use a number and a unit, e.g. 90s, 5m, 1h, 1d")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 1.0:
        raise ValueError(f"invalid --since {since!r}: the window must be at least 1s")
    if seconds > 90 * 86400:
        raise ValueError(f"invalid --since {since!r}: the window must be at most 90d")
    return seconds


@dataclass(frozen=True)
class ExemplarLink:
    """A slow FDS evaluation exemplar and where to follow its trace."""

    trace_id: str
    span_id: str
    seconds: float
    bucket: str  # the ``le`` of the bucket holding it
    link: str  # a Sentry trace URL, or the local command ``shopfds trace <id>``
    timestamp: float | None = None
    in_store: bool | None = None  # None: no trace store given
    slowest_engine: str | None = None  # e.g. "cti"
    slowest_engine_ms: float | None = None


@dataclass
class Figures:
    """Everything ``shopfds report`` computed for one window (seconds; None = no data)."""

    source: str  # "prometheus" or "scrape"
    since: str
    window_seconds: float
    evaluated_at: float  # unix time the instant queries were evaluated at (Prometheus ``time``)
    notes: list[str] = field(default_factory=list)
    targets: dict[str, bool] = field(default_factory=dict)  # service/instance -> answered (up)
    tps: float | None = None
    checkouts_per_s: float | None = None
    requests: float | None = None
    api_p95: float | None = None
    fds_evaluations: float | None = None
    fds_p50: float | None = None
    fds_p95: float | None = None
    fds_p99: float | None = None
    engine_p95: dict[str, float | None] = field(default_factory=dict)
    sla_violations: float | None = None
    error_share: float | None = None  # 5xx share of ecommerce HTTP requests
    errors_per_s: float | None = None  # rate of ecommerce_errors_total
    risk_levels: dict[str, float] = field(default_factory=dict)
    decisions: dict[str, float] = field(default_factory=dict)
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    precision_n: float | None = None  # labels the precision rests on: TP + FP
    recall_n: float | None = None  # TP + FN
    cache_hit_ratio: float | None = None
    degraded: float | None = None  # FDS calls without a verdict (fail policy applied)
    exemplars: list[ExemplarLink] = field(default_factory=list)
    # FDS latency over time: (unix time, {"P50": s, "P95": s, "P99": s}); None without Prometheus
    latency_series: list[tuple[float, dict[str, float]]] | None = None
