"""The ``shopfds`` command: trace lookup from a real trace store, bad input, a short demo."""

import logging
import os
import shutil
import subprocess
import sys

from typer.testing import CliRunner

from shopfds.cli import app
from shopfds.histogram import Histogram
from shopfds.procs import ROOT

runner = CliRunner()


def test_trace_prints_the_waterfall_of_a_stored_trace(make_telemetry, tmp_path):
    telemetry, memory = make_telemetry("fds")
    with telemetry.tracer.start_as_current_span("POST /v1/fds/evaluate"), \
            telemetry.tracer.start_as_current_span("fds.engine.cti", attributes={"fds.engine": "cti"}):
        logging.getLogger("services.fds").warning("cti provider slow for this one")
    logging.getLogger("services.fds").warning("outside any trace")
    telemetry.force_flush()
    trace_id = f"{memory.get_finished_spans()[0].context.trace_id:032x}"
    result = runner.invoke(app, ["trace", trace_id, "--store", str(tmp_path / "traces")],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "fds.engine.cti" in result.output and "POST /v1/fds/evaluate" in result.output
    assert "1 log lines" in result.output and "cti provider slow for this one" in result.output
    assert "outside any trace" not in result.output


def test_trace_rejects_bad_ids_and_reports_unknown_ones(tmp_path):
    bad = runner.invoke(app, ["trace", "not-hex", "--store", str(tmp_path)])
    assert bad.exit_code == 2 and "expected 32 hex digits" in bad.output
    missing = runner.invoke(app, ["trace", "0" * 31 + "1", "--store", str(tmp_path)])
    assert missing.exit_code == 1 and "not found" in missing.output


def test_demo_rejects_bad_flags():
    result = runner.invoke(app, ["demo", "--requests", "0"])
    assert result.exit_code == 2 and "requests" in result.output.lower()


def test_histogram_quantile_matches_promql_interpolation():
    # 10 observations: 5 in (0, 0.1], 5 in (0.1, 0.2]
    hist = Histogram(buckets=[(0.1, 5.0), (0.2, 10.0), (float("inf"), 10.0)])
    assert hist.quantile(0.5) == 0.1
    assert abs(hist.quantile(0.95) - 0.19) < 1e-9


def test_short_demo_runs_and_follows_an_exemplar_to_its_trace(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "shopfds.cli", "demo", "--requests", "60", "--slow-rate", "0.2",
         "--workdir", str(tmp_path / "demo")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"COLUMNS": "200", "PATH": os.environ.get("PATH", "")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FDS P95" in result.stdout and "60 ok, 0 errors" in result.stdout
    assert "fds.engine.cti" in result.stdout  # the slowest exemplar's trace was found and printed
    if shutil.which("prometheus"):
        rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
                for line in result.stdout.splitlines() if line.startswith("│ FDS P95")}
        assert rows["FDS P95"] == rows["FDS P95 (Prometheus histogram_quantile)"]
