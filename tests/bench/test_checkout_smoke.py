"""Smoke test of ``bench.checkout``: two copies of the shop (telemetry on and off), a real
Prometheus, the load generator in its own process and a py-spy profile; the harness runs and
writes every figure. Only the shape of the output is checked, never a timing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.checkout import bucket_index, summarize_profile
from bench.report import render
from shopfds.procs import prometheus_binary
from tests.bench.support import REPO_ROOT, run_bench


def test_checkout_bench_runs_and_writes_every_figure(tmp_path: Path) -> None:
    scraped = prometheus_binary() is not None  # the bench reads its Prometheus P95s only with one
    if not scraped and os.environ.get("CI"):
        pytest.fail("prometheus is not installed (make test installs it with apt-get)")
    result, stdout = run_bench("bench.checkout", tmp_path / "checkout.json", "--rates", "4", "--duration", "1.5",
                               "--rounds", "2", "--shoppers", "4", "--profile-seconds", "1", timeout=400)
    # ABBA: the rate ran twice per mode, in the order on, off, off, on.
    first = [r["mode"] for r in result["runs"] if r["offered_tps"] == 4]
    assert first == ["telemetry", "disabled", "disabled", "telemetry"]
    for run in result["runs"]:
        assert sum(run["outcomes"].values()) == int(run["offered_tps"] * 1.5)
        if run["error_rate"] == 0:
            assert run["order_ms"]["n"] == sum(run["outcomes"].values())
            assert 0 < run["order_ms"]["p50"] <= run["order_ms"]["p95"] <= run["order_ms"]["p99"]
            # every checkout reached the FDS, telemetry or not: its rows say so
            assert run["fds_ms"]["n"] == run["order_ms"]["n"] and set(run["engines_p95_ms"]) == {"rule", "ml", "cti"}
            assert run["cpu_ms_per_checkout"]["ecommerce"] > 0 and run["cpu_ms_per_checkout"]["fds"] > 0
        if run["mode"] == "telemetry" and scraped:
            assert run["prometheus_p95_ms"]["order"] > 0 and run["prometheus_p95_ms"]["fds"] > 0
    row = result["paired"][0]
    assert row["offered_tps"] == 4 and row["throughput_ratio"] > 0
    pipeline = result["pipeline"]
    assert pipeline["scrape"]["ecommerce"]["bytes"] > 1000 and pipeline["spans_exported_per_s"]["ecommerce"] > 0
    assert set(pipeline["rss_mb"]["telemetry"]) == set(pipeline["rss_mb"]["disabled"]) == {"ml", "fds", "ecommerce",
                                                                                             "admin"}
    assert result["profile"]["ecommerce"]["samples"] > 0
    assert "Telemetry on against off" in stdout
    # BENCHMARKS.md is written from these figures: every run rate and target shows up in it.
    markdown = render({"checkout": result})
    assert "| 4 | telemetry |" in markdown and "| 4 | disabled |" in markdown
    assert "sustained 1000 checkouts/s" in markdown and "(not run)" in markdown


def test_profile_summary_gives_each_sample_to_its_innermost_library_frame() -> None:
    site = "/venv/lib/python3.11/site-packages"
    collapsed = "\n".join([
        f"run (/usr/lib/python3.11/asyncio/base_events.py:1);export ({REPO_ROOT}/otel_setup/trace_store.py:5);"
        f"dumps (/usr/lib/python3.11/json/__init__.py:231) 3",
        f"run (/usr/lib/python3.11/asyncio/base_events.py:1);execute ({site}/sqlalchemy/engine/base.py:9) 6",
        "select (/usr/lib/python3.11/selectors.py:468) 1",
    ])
    summary = summarize_profile(collapsed)
    assert summary["samples"] == 10
    assert summary["packages_pct"] == {"sqlalchemy": 60.0, "otel_setup": 30.0, "stdlib": 10.0}
    assert summary["telemetry_pct"] == 30.0
    assert summary["functions_self_pct"]["export [otel_setup]"] == 30.0


def test_bucket_index_counts_from_the_first_bound() -> None:
    assert bucket_index(0.001) == 0 and bucket_index(0.0025) == 0 and bucket_index(0.003) == 1
    assert bucket_index(99.0) == len((0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5))
