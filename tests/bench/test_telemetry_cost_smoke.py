"""Smoke test of ``bench.telemetry_cost``: it runs end to end and writes its figures.

Only the shape of the output is checked, never a timing.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bench.report import render
from bench.telemetry_cost import LADDER, VARIANTS
from tests.bench.support import run_bench


def test_bench_runs_and_writes_every_variant(tmp_path: Path) -> None:
    figures, _ = run_bench("bench.telemetry_cost", tmp_path / "figures.json", "--requests", "50", "--runs", "1")
    assert set(figures["variants"]) == set(VARIANTS)
    for name in VARIANTS:
        median = figures["variants"][name]["median_us"]
        assert isinstance(median, float) and median > 0, (name, median)
        assert all(isinstance(x, float) and x > 0 for x in figures["variants"][name]["runs_us"])
    assert "ratio" in figures
    # the breakdown: one row per ladder step, each step's component the difference to the one before
    steps = [row["step"] for row in figures["breakdown"]]
    assert steps == list(LADDER)
    rows = figures["breakdown"]
    for before, after in itertools.pairwise(rows):
        assert after["component_us"] == pytest.approx(after["median_us"] - before["median_us"])
    assert figures["variants"]["+scrubbing"]["spans_stored_per_request"] > 0  # engine spans reached the store
    markdown = render({"telemetry_cost": figures})  # BENCHMARKS.md's section from these figures
    assert all(f"| {name} |" in markdown for name in VARIANTS) and "contrib+Sentry" in markdown
    assert "≤ 100 µs" in markdown
