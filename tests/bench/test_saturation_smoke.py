"""Smoke test of ``bench.saturation``: the FDS as processes, wrk's closed loop in ABBA rounds, the
fixed-rate generator and py-spy; the harness runs and writes every figure. Only the shape of the
output is checked, never a timing.
"""

from __future__ import annotations

from pathlib import Path

from bench.report import render
from tests.bench.support import require_wrk, run_bench


def test_saturation_bench_runs_and_writes_every_figure(tmp_path: Path) -> None:
    require_wrk()
    result, _ = run_bench("bench.saturation", tmp_path / "saturation.json", "--modes", "development,disabled",
                          "--duration", "1", "--rounds", "2", "--warmup", "1", "--rate", "40", "--rate-duration", "1",
                          "--profile-seconds", "1")
    # ABBA: development, disabled, then disabled, development.
    assert [(r["round"], r["mode"]) for r in result["runs"]] == [
        (0, "development"), (0, "disabled"), (1, "disabled"), (1, "development")]
    for run in result["runs"]:
        assert run["requests"] > 0 and run["evaluations_per_s"] > 0 and run["error_rate"] == 0
        assert run["cpu_ms_per_evaluation"]["fds"] > 0 and run["latency_ms"]["p95"] > 0
    dev = result["modes"]["development"]
    assert dev["ratio"] > 0 and len(dev["paired_ratios"]) == 2
    assert set(result["fixed_rate"]) == {"development", "disabled"}
    assert all(f["latency_ms"]["n"] == 40 and not f["errors"] for f in result["fixed_rate"].values())
    assert result["profile"]["development"]["samples"] > 0
    # BENCHMARKS.md opens with the saturation ratios from these figures.
    markdown = render({"saturation": result})
    assert markdown.split("\n## ")[1].startswith("Saturation")  # the first section
    assert "| FDS evaluate |" in markdown and "checkout (`bench.checkout_saturation`) | not run" in markdown
