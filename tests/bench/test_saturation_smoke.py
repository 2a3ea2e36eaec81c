"""Smoke test of ``bench.saturation``: the FDS as processes, wrk's closed loop in ABBA rounds, the
fixed-rate generator and py-spy; the harness runs and writes every figure. Only the shape of the
output is checked, never a timing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import render

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_saturation_bench_runs_and_writes_every_figure(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("CI"):
            raise AssertionError("wrk missing: `make wrk` installs it")
        pytest.skip("wrk not installed")
    out = tmp_path / "saturation.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.saturation", "--modes", "development,disabled", "--duration", "1",
         "--rounds", "2", "--warmup", "1", "--rate", "40", "--rate-duration", "1", "--profile-seconds", "1",
         "--json", str(out)],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True,
        timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
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
