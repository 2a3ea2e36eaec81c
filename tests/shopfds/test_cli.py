"""The ``shopfds`` command: trace lookup from a real trace store, bad input, a short demo."""

import logging
import os
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


def test_demo_load_and_report_reject_bad_flags(tmp_path):
    result = runner.invoke(app, ["demo", "--duration", "0"])
    assert result.exit_code == 2 and "duration" in result.output.lower()
    fault = runner.invoke(app, ["demo", "--fault", "disk-full"])
    assert fault.exit_code == 2 and "unknown fault" in fault.output
    not_up = runner.invoke(app, ["load", "--workdir", str(tmp_path)])
    assert not_up.exit_code == 1 and "not running" in not_up.output
    since = runner.invoke(app, ["report", "--workdir", str(tmp_path)])
    assert since.exit_code == 1 and "shopfds up" in since.output


def test_histogram_quantile_matches_promql_interpolation():
    # 10 observations: 5 in (0, 0.1], 5 in (0.1, 0.2]
    hist = Histogram(buckets=[(0.1, 5.0), (0.2, 10.0), (float("inf"), 10.0)])
    assert hist.quantile(0.5) == 0.1
    assert abs(hist.quantile(0.95) - 0.19) < 1e-9


def test_short_demo_runs_end_to_end_and_leaves_nothing_running(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "shopfds.cli", "demo", "--duration", "8", "--tps", "2", "--free-ports",
         "--workdir", str(tmp_path / "demo")],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
        env={"COLUMNS": "200", "PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "FDS P95" in result.stdout and "stopped ml, fds, ecommerce, admin" in result.stdout
    assert "still listening" not in result.stdout
    assert (tmp_path / "demo" / "report.html").stat().st_size > 1000


def test_up_names_a_taken_port_and_starts_nothing(tmp_path):
    import contextlib
    import socket

    from shopfds.stack import read_state

    with socket.socket() as blocker:
        with contextlib.suppress(OSError):  # already taken by something else: the same case
            blocker.bind(("127.0.0.1", 8001))
            blocker.listen()
        result = runner.invoke(app, ["up", "--workdir", str(tmp_path)], terminal_width=200)
    assert result.exit_code == 1 and "port taken" in result.output and "fds :8001" in result.output
    assert read_state(tmp_path) is None
    assert runner.invoke(app, ["down", "--workdir", str(tmp_path)]).output.strip() == "nothing was running"


async def test_trace_shows_the_stable_http_and_database_names_of_real_spans(make_telemetry, tmp_path):
    import httpx
    from fastapi import FastAPI
    from sqlalchemy import text

    from services.common.db import Database

    api = FastAPI()

    @api.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/things.db")
        try:
            async with db.sessions() as session:
                await session.execute(text("SELECT 1"))
        finally:
            await db.dispose()
        return {"id": thing_id}

    telemetry, memory = make_telemetry("ecommerce", app=api)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://shop") as client:
        assert (await client.get("/v1/things/t1")).status_code == 200
    telemetry.force_flush()
    trace_id = f"{memory.get_finished_spans()[0].context.trace_id:032x}"
    result = runner.invoke(app, ["trace", trace_id, "--store", str(tmp_path / "traces")], terminal_width=250)
    assert result.exit_code == 0, result.output
    assert "http.response.status_code=200" in result.output and "http.route=/v1/things/{thing_id}" in result.output
    assert "db.system.name=sqlite" in result.output and "http.status_code" not in result.output
