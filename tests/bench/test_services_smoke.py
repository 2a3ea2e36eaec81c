"""Smoke test of ``bench.services``: the harness runs on the real services and writes its figures.

Only the shape of the output is checked, never a timing.
"""

from __future__ import annotations

from pathlib import Path

from bench.report import render
from tests.bench.support import run_bench


def test_services_bench_runs_and_writes_every_figure(tmp_path: Path) -> None:
    figures, stdout = run_bench("bench.services", tmp_path / "figures.json", "--evaluations", "30", "--rate", "10",
                                "--duration", "2", "--checkouts", "3")
    inproc, http = figures["in_process"], figures["over_http"]
    assert inproc["evaluate_ms"]["n"] == 30 and set(inproc["engines_ms"]) == {"rule", "ml", "cti"}
    assert http["fds"]["evaluate_ms"]["n"] == 20 and not http["fds"]["errors"]
    assert http["checkout_ms"]["n"] == 3 and sum(http["order_status"].values()) == 3
    for p in (inproc["evaluate_ms"], http["fds"]["evaluate_ms"], http["checkout_ms"]):
        assert 0 < p["p50"] <= p["p95"] <= p["p99"]
    assert "FDS evaluate, in-process" in stdout
    markdown = render({"services": figures})  # BENCHMARKS.md's section from these figures
    assert "| FDS evaluate, in-process | 30 |" in markdown and "FDS over HTTP P95" in markdown
