"""The soak in two minutes (``make soak`` runs it for twenty): the shop on PostgreSQL and a Redis of
its own under shoppers, each fault once (cti-slow, ml-down, db-slow, payment-errors, PostgreSQL's
connections terminated, Redis killed and started), then the reconciler's rounds.

Every check of the long run is asserted except the RSS one, which needs the long run: two minutes
are mostly warm-up, so here RSS is only held under a gross-leak bound.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shopfds.procs import ROOT

RSS_LONG_RUN_CHECK = "RSS within 10 % of warm-up"
GROSS_LEAK = 1.5  # end RSS over 1.5x the warm-up value in two minutes is a leak, not warm-up


@pytest.mark.timeout(420)
def test_two_minutes_of_faults_leave_every_order_settled_and_every_count_equal(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("redis-server is not installed")
    out = tmp_path / "soak.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--duration", "72", "--window", "6", "--warmup", "15",
         "--settle", "40", "--workers", "4", "--json", str(out), "--keep-logs", str(tmp_path / "logs")],
        cwd=ROOT, capture_output=True, text=True, timeout=400, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["cycles"] >= 6, result  # each of the six faults had its window
    failed = [name for name, ok in result["checks"].items() if not ok and name != RSS_LONG_RUN_CHECK]
    assert not failed, json.dumps(result, indent=1) + _warnings(tmp_path / "logs")
    assert result["checkouts_201"] > 50, result  # the shop kept selling between the faults
    assert result["database"]["orders"] > 0 and result["database"]["evaluations"] > 0
    for name, warm in result["rss_warm_mb"].items():
        assert result["rss_end_mb"][name] <= warm * GROSS_LEAK, (name, result["rss_warm_mb"], result["rss_end_mb"])


def _warnings(logs: Path) -> str:
    """The services' warnings and errors of a failed run (bench.soak keeps its logs then)."""
    lines = [f"{path.name}: {line.strip()}" for path in sorted(logs.rglob("*.jsonl"))
             for line in path.read_text(errors="replace").splitlines()
             if '"level": "WARNING"' in line or '"level": "ERROR"' in line]
    return "\n" + "\n".join(lines[-60:])
