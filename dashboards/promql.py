"""PromQL fragments the dashboards share. Grafana fills ``$__rate_interval`` and ``$__range``."""

from __future__ import annotations

RATE = "$__rate_interval"


def rate(metric: str, selector: str = "", window: str = RATE) -> str:
    return f"rate({metric}{{{selector}}}[{window}])" if selector else f"rate({metric}[{window}])"


def sum_rate(metric: str, by: str = "", selector: str = "", window: str = RATE) -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} ({rate(metric, selector, window)})"


def quantile(q: float, histogram: str, by: str = "", selector: str = "") -> str:
    """``histogram_quantile`` over a classic histogram named without ``_bucket``."""
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, {sum_rate(histogram + '_bucket', labels, selector)})"


def increase(metric: str, window: str, by: str = "", zero: bool = False) -> str:
    """``sum(increase(...))``; ``zero`` shows 0 instead of "No data" for a counter never incremented."""
    grouping = f" by ({by})" if by else ""
    expr = f"sum{grouping} (increase({metric}[{window}]))"
    return f"{expr} or vector(0)" if zero else expr


def average(histogram: str, by: str = "") -> str:
    return f"{sum_rate(histogram + '_sum', by)} / {sum_rate(histogram + '_count', by)}"
