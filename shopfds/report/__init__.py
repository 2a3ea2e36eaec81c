"""``shopfds report``: the SLO report of the demo, on the terminal and as one HTML file.

Figures come from Prometheus (PromQL over the ``--since`` window) when it is given and
reachable, else from each service's ``/metrics`` (cumulative since start; the header says so).

    from shopfds.report import collect, run_report, sla_ok
    figures = collect({"fds": "http://127.0.0.1:8001"}, "http://127.0.0.1:9090", "5m")
    figures.fds_p95, sla_ok(figures), figures.exemplars[0].link

Exit code of :func:`run_report`: 0 when the SLAs hold (FDS P95, API P95, error rate; a figure
without data does not fail), 1 when one is broken, 2 when no service or Prometheus target answered.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from rich.console import Console

from .compute import compute
from .console import print_report
from .figures import ExemplarLink, Figures, parse_since
from .html import render_html, write_html
from .prom import PrometheusSource, reachable
from .sources import ScrapeSource
from .targets import Check, Verdict, checks, sla_ok

__all__ = ["Check", "ExemplarLink", "Figures", "Verdict", "checks", "collect", "parse_since", "render_html",
           "run_report", "sla_ok"]


def collect(urls: dict[str, str], prometheus: str | None, since: str, *, sentry_dsn: str | None = None,
            trace_store: Path | None = None, evaluated_at: float | None = None,
            probe_seconds: float = 1.0) -> Figures:
    """The figures of one report (ValueError for a bad ``since`` or Sentry DSN).

    With Prometheus, every instant query runs at ``figures.evaluated_at`` over the range
    ``prom.duration(figures.window_seconds)`` (e.g. ``[300s]``): the same PromQL at that time
    gives the same numbers. ``probe_seconds``: the gap between the two scrapes rates come from
    when scraping (0: no rates).
    """
    window = parse_since(since)
    if sentry_dsn:
        from .links import sentry_trace_url

        sentry_trace_url(sentry_dsn, "0" * 32)  # a bad DSN fails here, before any query
    unreachable = None
    if prometheus:
        if reachable(prometheus):
            try:
                return _from_prometheus(prometheus, urls, since, window, evaluated_at, sentry_dsn, trace_store)
            except (httpx.HTTPError, RuntimeError, KeyError, ValueError) as exc:
                unreachable = f"Prometheus at {prometheus} failed ({exc!r:.120}): scraped /metrics instead"
        else:
            unreachable = f"Prometheus at {prometheus} is not reachable: scraped /metrics instead"
    figures = compute(ScrapeSource(urls, probe_seconds), since, window, sentry_dsn=sentry_dsn,
                      trace_store=trace_store)
    if unreachable:
        figures.notes.insert(0, unreachable)
    return figures


def _from_prometheus(prometheus: str, urls: dict[str, str], since: str, window: float, evaluated_at: float | None,
                     sentry_dsn: str | None, trace_store: Path | None) -> Figures:
    source = PrometheusSource(prometheus, window, evaluated_at, urls)
    try:
        return compute(source, since, window, sentry_dsn=sentry_dsn, trace_store=trace_store)
    finally:
        source.close()


def run_report(urls: dict[str, str], prometheus: str | None, since: str, html: Path | None, console: Console,
               sentry_dsn: str | None = None, trace_store: Path | None = None) -> int:
    """Print the report (and write ``html``); the exit code says whether the SLAs hold."""
    figures = collect(urls, prometheus, since, sentry_dsn=sentry_dsn, trace_store=trace_store)
    print_report(figures, console)
    if html is not None:
        console.print(f"HTML report written to {write_html(figures, html)}")
    if not any(figures.targets.values()):
        console.print("[red]no service answered: nothing to report[/]")
        return 2
    return 0 if sla_ok(figures) else 1
