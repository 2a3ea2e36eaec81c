"""Ecommerce Overview (uid ``ecommerce-overview``): is the shop selling, and is it healthy?

Top row: transactions per minute, revenue per hour, active users, cache hit ratio (target 80 %).
Then API P95 against 200 ms (with exemplars), HTTP requests by status class, orders by status,
payment outcomes and what the FDS answered to checkout.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from otel_setup.catalog import API_P95_TARGET_SECONDS

from .panels import CACHE_HIT_TARGET, Q, above, below, dashboard, neutral, pie, stat, timeseries
from .promql import RATE, increase, quantile, sum_rate

UID = "ecommerce-overview"
DESCRIPTION = "Shop traffic, revenue, API latency against 200 ms, orders, payments, cache and FDS outcomes."
# 200 -> "2xx": one series per status class, whatever codes occur.
STATUS_CLASS = (f"sum by (status_class) (label_replace(rate(ecommerce_http_requests_total[{RATE}]), "
                '"status_class", "${1}xx", "status_code", "([0-9])[0-9][0-9]"))')


# From the counters, summed over every process before dividing (a ratio of sums, never an
# average of each process's ratio gauge).
CACHE_HIT_RATIO = " / ".join(sum_rate("ecommerce_cache_operations_total", selector=selector)
                             for selector in ('operation="get", result="hit"', 'operation="get"'))


def build() -> Dashboard:
    panels = [
        stat(1, "Transactions / min", Q(f"{sum_rate('ecommerce_transactions_total')} * 60", "transactions/min"),
             unit="none", thresholds=neutral(), pos=(0, 0, 6, 5),
             description="Payment transactions (completed, failed, blocked) per minute."),
        stat(2, "Revenue / hour", Q(increase("ecommerce_payment_amount_total", "1h"), "KRW"),
             unit="currencyKRW", thresholds=neutral(), pos=(6, 0, 6, 5),
             description="Amount of successful payments over the last hour."),
        stat(3, "Active users", Q("max(ecommerce_active_users)", "users"),
             unit="none", thresholds=neutral(), pos=(12, 0, 6, 5),
             description="Users with a session active in the last 15 minutes (one shared count: "
                         "every process reports it, hence max)."),
        stat(4, "Cache hit ratio", Q(CACHE_HIT_RATIO, "hit ratio"),
             unit="percentunit", thresholds=below(CACHE_HIT_TARGET), pos=(18, 0, 6, 5),
             description="Product cache hits over lookups; red below the 80 % target."),
        timeseries(5, "API latency P95 vs 200 ms", [
            Q(quantile(0.95, "ecommerce_http_request_duration_seconds"), "P95", exemplar=True),
            Q(quantile(0.95, "ecommerce_http_request_duration_seconds", by="endpoint"), "{{endpoint}}"),
        ], unit="s", thresholds=above(API_P95_TARGET_SECONDS), pos=(0, 5, 12, 9),
            description="Dashed line: the 200 ms API target. Markers are exemplars: hover one to open its trace."),
        timeseries(6, "HTTP requests by status class", [Q(STATUS_CLASS, "{{status_class}}")],
                   unit="reqps", stacked=True, pos=(12, 5, 12, 9),
                   description="2xx / 4xx / 5xx from the status_code label."),
        timeseries(7, "Orders by status", [Q(f"{sum_rate('ecommerce_orders_total', by='status')} * 60", "{{status}}")],
                   unit="none", pos=(0, 14, 8, 9),
                   description="Orders reaching each status per minute (pending, processing, shipped, ...)."),
        pie(8, "Payment status", Q(increase("ecommerce_payments_total", "$__range", by="status"), "{{status}}"),
            unit="none", pos=(8, 14, 8, 9), description="Payments by outcome over the dashboard range."),
        pie(9, "FDS results", Q(increase("ecommerce_fds_evaluations_total", "$__range", by="result"), "{{result}}"),
            unit="none", pos=(16, 14, 8, 9), description="What the FDS answered at checkout over the dashboard range."),
    ]
    return dashboard(UID, "Ecommerce Overview", DESCRIPTION, panels)
