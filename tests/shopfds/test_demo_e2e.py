"""The demo's pieces against the real shop, a real Prometheus and real Locust traffic:

- the report's FDS P95 is Prometheus's ``histogram_quantile`` over the same window;
- with the ``cti-slow`` fault on, an exemplar on a bucket >= 0.1 s resolves through
  ``shopfds trace`` to a stored trace whose ``fds.engine.cti`` span is the slow part;
- ``down`` leaves no port listening.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from rich.console import Console
from typer.testing import CliRunner

from otel_setup.trace_store import find_trace
from shopfds.cli import app
from shopfds.load.runner import Fault, run_load
from shopfds.report import collect
from shopfds.stack import down, port_in_use, up

from ..procs import prometheus as require_prometheus


def _prometheus_p95(prom: str, window: str, at: float) -> float:
    query = f"histogram_quantile(0.95, sum by (le) (increase(fds_evaluation_duration_seconds_bucket[{window}])))"
    body = httpx.get(f"{prom}/api/v1/query", params={"query": query, "time": at}, timeout=10).json()
    return float(body["data"]["result"][0]["value"][1])


def test_slow_cti_exemplar_resolves_to_its_trace_and_p95_matches_prometheus(tmp_path: Path) -> None:
    from shopfds import procs

    if procs.prometheus_binary() is None:
        require_prometheus([], tmp_path)  # skips locally, fails in CI
    env = {"OTEL_BSP_SCHEDULE_DELAY": "200", "SHOPFDS_CTI_SLOW_FAULT_SHARE": "0.5"}
    stack = up(tmp_path, env=env, interval="1s", seed_ports=False)
    try:
        assert stack.prometheus is not None
        result = run_load(stack.urls, 8, 14, [Fault("cti-slow=150ms", 2, 12)], tmp_path / "load", Console(width=160))
        assert result.requests > 0 and result.failures == 0
        time.sleep(3)  # a last scrape and trace-store flush
        figures = collect(stack.urls, stack.prometheus, "60s", trace_store=tmp_path / "traces")
        assert figures.source == "prometheus" and figures.fds_p95 is not None
        assert abs(figures.fds_p95 - _prometheus_p95(stack.prometheus, "60s", figures.evaluated_at)) < 1e-6
        slow = [e for e in figures.exemplars if e.seconds >= 0.1 and e.in_store]
        assert slow, figures.exemplars
        spans = find_trace(tmp_path / "traces", slow[0].trace_id)
        cti = max((s for s in spans if s["name"] == "fds.engine.cti"), key=lambda s: s["duration_ms"])
        assert cti["duration_ms"] >= 100
        shown = CliRunner().invoke(app, ["trace", slow[0].trace_id, "--store", str(tmp_path / "traces")],
                                   terminal_width=200)
        assert shown.exit_code == 0 and "fds.engine.cti" in shown.output and "POST /v1/fds/evaluate" in shown.output
    finally:
        down(tmp_path)
    ports = [int(url.rsplit(":", 1)[1]) for url in [*stack.urls.values(), stack.prometheus or ""] if url]
    assert not [p for p in ports if port_in_use(p)]
