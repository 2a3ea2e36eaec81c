"""Smoke test of ``bench.services``: the harness runs on the real services and writes its figures.

Only the shape of the output is checked, never a timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.report import render

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_services_bench_runs_and_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.services", "--evaluations", "30", "--rate", "10", "--duration", "2",
         "--checkouts", "3", "--json", str(out)],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True,
        timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    figures = json.loads(out.read_text())
    inproc, http = figures["in_process"], figures["over_http"]
    assert inproc["evaluate_ms"]["n"] == 30 and set(inproc["engines_ms"]) == {"rule", "ml", "cti"}
    assert http["fds"]["evaluate_ms"]["n"] == 20 and not http["fds"]["errors"]
    assert http["checkout_ms"]["n"] == 3 and sum(http["order_status"].values()) == 3
    for p in (inproc["evaluate_ms"], http["fds"]["evaluate_ms"], http["checkout_ms"]):
        assert 0 < p["p50"] <= p["p95"] <= p["p99"]
    assert "FDS evaluate, in-process" in proc.stdout
    markdown = render({"services": figures})  # BENCHMARKS.md's section from these figures
    assert "| FDS evaluate, in-process | 30 |" in markdown and "FDS over HTTP P95" in markdown
