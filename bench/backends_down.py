"""Telemetry backends down at saturation: the FDS's throughput with refused OTLP and Sentry.

    python -m bench.backends_down [--rounds R] [--duration S] [--connections C] [--profile] [--json FILE]

The FDS runs as a uvicorn process (embedded back end, no ML service) exporting OTLP traces,
metrics and logs and sending Sentry events, saturated by ``wrk`` (closed loop, C connections,
a new transaction per request). Two modes, each a fresh process:

- ``healthy``: OTLP endpoint and Sentry DSN on a local sink that answers 200 to everything;
- ``down``: both on a closed port (every export and every event refused).

Runs alternate healthy/down in ABBA order (H D D H per round) so that a drifting machine favours
neither; each run warms up, then measures S seconds. The report gives the median requests a
second of each mode, their ratio (target >= ``RATIO_TARGET``), the non-2xx answers, the loss
counters the down process showed on ``/metrics`` (failures are counted, not hidden) and its
SIGTERM time. ``--profile`` also records the down process with py-spy (``--gil``) for one run and
prints where its CPU went. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from bench.checkout import summarize_profile
from shopfds.procs import ROOT, free_port, wait_http

HEALTHY, DOWN = "healthy", "down"
RATIO_TARGET = 0.95
LOSS_COUNTERS = ("otel_setup_export_failures_total", "otel_setup_spans_dropped_total",
                 "otel_setup_sentry_events_dropped_total")
err = Console(stderr=True)

# One new transaction per request; thread id and counter keep ids unique across wrk threads.
WRK_SCRIPT = r"""
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
local n = 0
request = function()
  n = n + 1
  local id = string.format("%d-%d-%d", tid, n, math.random(1000000000))
  local body = string.format('{"transaction_id":"t-%s","order_id":"o-%s","user_id":"u-%s","amount":35000,'
    .. '"currency":"KRW","payment_method":"card","card_bin":"411111","card_last4":"1111",'
    .. '"ip_address":"175.%d.%d.%d","device_id":"d-%s","email":"kim@example.com",'
    .. '"billing_country":"KR","shipping_country":"KR","created_at":"2026-11-26T14:30:00+09:00"}',
    id, id, id, n % 250, tid, n % 200 + 1, id)
  return wrk.format("POST", "/v1/fds/evaluate", {["Content-Type"] = "application/json"}, body)
end
"""


class _Sink(BaseHTTPRequestHandler):
    """A healthy collector and Sentry: reads the body, answers 200."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def fds_env(backend: str, workdir: Path, event_per_request: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SENTRY_", "SHOPFDS_"))}
    if event_per_request:  # every evaluation breaks the SLA: one Sentry warning event per request
        env["SHOPFDS_SLA_SECONDS"] = "0.000001"
    return {**env, "PYTHONPATH": str(ROOT), "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{backend}",
            "SENTRY_DSN": f"http://public@{backend}/1", "SHOPFDS_LOG_FORMAT": "json",
            "SHOPFDS_DATA_DIR": str(workdir / "data"), "SHOPFDS_TRACE_STORE_DIR": str(workdir / "traces"),
            "SHOPFDS_LOG_DIRECTORY": str(workdir / "logs"), "SHOPFDS_ML_URL": f"http://127.0.0.1:{free_port()}"}


@contextmanager
def fds(env: dict[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "services.fds.main:app", "--host", "127.0.0.1",
                                 "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=90, proc=proc)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def wrk(url: str, script: Path, seconds: float, connections: int, threads: int) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:.0f}s", "-s",
                          str(script), url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": float(rps.group(1)) if rps else 0.0, "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0}


def losses(url: str) -> dict[str, float]:
    body = httpx.get(f"{url}/metrics", timeout=10).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name in LOSS_COUNTERS and sample.value:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process, all its threads (exporters included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sigterm_seconds(proc: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    return round(time.monotonic() - started, 2)


def profile(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        err.print("py-spy not installed: no profile")
        return None
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250", "--gil",
                             "--full-filenames", "--duration", str(int(seconds)), "--output", str(output),
                             "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def one_run(mode: str, backend: str, args: argparse.Namespace, workdir: Path, spy: bool) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=workdir))
    script = workdir / "evaluate.lua"
    with fds(fds_env(backend, run_dir, args.event_per_request), run_dir / "fds.log") as (url, proc):
        wrk(url, script, args.warmup, args.connections, args.threads)
        recorder = profile(proc.pid, args.duration, run_dir / "profile.txt") if spy else None
        cpu = cpu_seconds(proc.pid)
        figures: dict[str, Any] = {"mode": mode, **wrk(url, script, args.duration, args.connections, args.threads)}
        requests = figures["rps"] * args.duration
        figures["cpu_ms_per_request"] = round(1000 * (cpu_seconds(proc.pid) - cpu) / requests, 3) if requests else None
        if recorder is not None:
            recorder.wait(timeout=args.duration + 30)
            if (run_dir / "profile.txt").exists():
                figures["profile"] = summarize_profile((run_dir / "profile.txt").read_text())
        figures["losses"] = losses(url)
        figures["shutdown_s"] = sigterm_seconds(proc)
    err.print(f"{mode}: {figures['rps']:.0f} req/s, non-2xx {figures['non_2xx']}, shutdown {figures['shutdown_s']} s")
    return figures


def rounds_order(rounds: int) -> Iterator[str]:
    for _ in range(rounds):
        yield from (HEALTHY, DOWN, DOWN, HEALTHY)


def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    (workdir / "evaluate.lua").write_text(WRK_SCRIPT)
    refused = f"127.0.0.1:{free_port()}"
    runs: list[dict[str, Any]] = []
    profiled: set[str] = set()
    with sink() as healthy:
        for mode in rounds_order(args.rounds):
            spy = args.profile and mode not in profiled
            if spy:
                profiled.add(mode)
            runs.append(one_run(mode, healthy if mode == HEALTHY else refused, args, workdir, spy))
    medians = {mode: statistics.median(r["rps"] for r in runs if r["mode"] == mode) for mode in (HEALTHY, DOWN)}
    cpu = {mode: statistics.median(r["cpu_ms_per_request"] or 0.0 for r in runs if r["mode"] == mode)
           for mode in (HEALTHY, DOWN)}
    ratio = medians[DOWN] / medians[HEALTHY] if medians[HEALTHY] else 0.0
    return {"command": "python -m bench.backends_down " + " ".join(sys.argv[1:]),
            "connections": args.connections, "duration_s": args.duration, "rounds": args.rounds,
            "median_rps": medians, "median_cpu_ms_per_request": cpu, "ratio": round(ratio, 3),
            "load_average": os.getloadavg()[0], "target": RATIO_TARGET, "met": ratio >= RATIO_TARGET,
            "runs": runs}


def table(result: dict[str, Any]) -> Table:
    out = Table(title=f"FDS saturated (wrk -c{result['connections']}), telemetry backends healthy vs down")
    for column in ("mode", "median req/s", "runs req/s", "CPU ms/request", "non-2xx", "shutdown s"):
        out.add_column(column)
    for mode in (HEALTHY, DOWN):
        mine = [r for r in result["runs"] if r["mode"] == mode]
        out.add_row(mode, f"{result['median_rps'][mode]:.0f}", " ".join(f"{r['rps']:.0f}" for r in mine),
                    f"{result['median_cpu_ms_per_request'][mode]:.2f}",
                    str(sum(r["non_2xx"] + r["socket_errors"] for r in mine)),
                    " ".join(f"{r['shutdown_s']}" for r in mine))
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.backends_down", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="ABBA rounds (4 runs each)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds per run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--event-per-request", action="store_true",
                        help="SLA so low that every evaluation sends a Sentry event (the worst case)")
    parser.add_argument("--profile", action="store_true", help="py-spy the first run of each mode")
    parser.add_argument("--json", type=Path, help="write the figures here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        err.print("wrk is not installed (apt-get install -y wrk)")
        return 1
    with tempfile.TemporaryDirectory(prefix="backends-down-") as tmp:
        result = bench(args, Path(tmp))
    console = Console()
    console.print(table(result))
    console.print(f"down / healthy throughput: {result['ratio']:.3f} (target >= {RATIO_TARGET}: "
                  f"{'met' if result['met'] else 'not met'})")
    down = next(r for r in result["runs"] if r["mode"] == DOWN)
    console.print("losses counted by the down process: " + json.dumps(down["losses"]))
    for run in result["runs"]:
        if "profile" in run:
            console.print(f"{run['mode']} process CPU (py-spy --gil, % of samples): "
                          + json.dumps(run["profile"]["packages_pct"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
