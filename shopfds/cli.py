"""``shopfds``: run the instrumented shop locally, load it, report on its SLOs, follow a trace.

    shopfds up                  the four services (+ Prometheus when installed), detached
    shopfds load --tps 5 --duration 60 --fault cti-slow@20-40    (5 checkouts a second)
    shopfds report --since 5m --html report.html
    shopfds trace TRACE_ID      span waterfall and log lines of one trace
    shopfds down                stop what `up` started
    shopfds rules --out DIR     the alert rules with runbook links under $SHOPFDS_RUNBOOK_BASE_URL
    shopfds demo                all of the above in one go, leaving nothing running
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from otel_setup.settings import load_settings
from otel_setup.trace_store import find_trace

from .trace_view import print_logs, print_trace, trace_log_lines

if TYPE_CHECKING:
    from .load.runner import Fault

app = typer.Typer(help="ShopFDS: the instrumented shop, its load, its SLO report and its traces.",
                  no_args_is_help=True, add_completion=False)
# Piped output (CI logs, files) is not cut at 80 columns: trace names and ids must stay whole.
console = Console() if sys.stdout.isatty() else Console(width=160)
WORKDIR = Path(".shopfds/run")
WorkdirOption = typer.Option(WORKDIR, help="Where the services keep data, traces, logs and pids.")
WorkersOption = typer.Option(1, min=1, max=64, help="Processes per service (> 1 needs DATABASE_URL and REDIS_URL).")


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]{message}[/]")
    return typer.Exit(code)


@app.command()
def up(workdir: Path = WorkdirOption,
       prometheus: bool = typer.Option(True, help="Also start Prometheus (when installed)."),
       interval: str = typer.Option("5s", help="Prometheus scrape interval."),
       workers: int = WorkersOption) -> None:
    """Start the four services on their seed ports (and Prometheus on 9090), detached."""
    from .stack import up as start

    try:
        stack = start(workdir, with_prometheus=prometheus, interval=interval, workers=workers)
    except (RuntimeError, TimeoutError) as exc:
        raise _fail(str(exc)) from exc
    for name, url in stack.urls.items():
        scraped = [f"{m}/metrics" for w, m in stack.metrics.items() if w == name or w.startswith(f"{name}-")]
        console.print(f"{name:10} {url}  (metrics: {', '.join(scraped)})")
    console.print(f"prometheus {stack.prometheus or 'not started (binary not installed)'}")


@app.command()
def down(workdir: Path = WorkdirOption) -> None:
    """Stop exactly what `shopfds up` started."""
    from .stack import down as stop

    stopped = stop(workdir)
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def load(tps: float = typer.Option(5.0, min=0.1, max=2000,
                                   help="Transactions (checkouts the FDS evaluates) per second: a target, the "
                                        "summary prints the rate reached."),
         duration: float = typer.Option(60.0, min=1, max=3600, help="Seconds of load."),
         fault: list[str] = typer.Option([], help="NAME[=VALUE][@START[-END]] seconds, e.g. cti-slow@20-40, "
                                                  "payment-errors=5%@10; repeatable."),
         workdir: Path = WorkdirOption) -> None:
    """Realistic traffic (Locust) against the running shop, with faults switched at run time."""
    from .load.runner import run_load

    urls = _running_urls(workdir)
    try:
        faults = [_parse_fault(spec) for spec in fault]
    except ValueError as exc:
        raise _fail(str(exc), 2) from exc
    try:
        result = run_load(urls, tps, duration, faults, workdir / "load", console)
    except ValueError as exc:
        raise _fail(str(exc), 2) from exc
    for line in result.summary(tps):
        console.print(line, markup=False)


@app.command()
def report(since: str = typer.Option("5m", help="Window, e.g. 90s, 5m, 1h."),
           html: Path | None = typer.Option(None, help="Also write a self-contained HTML report here."),
           workdir: Path = WorkdirOption) -> None:
    """SLO report: from Prometheus when reachable, else from the services' /metrics."""
    from .report import run_report

    state = _state(workdir)
    try:
        code = run_report(state.get("metrics") or state["urls"], state.get("prometheus"), since, html, console,
                          sentry_dsn=load_settings().sentry_dsn, trace_store=workdir / "traces")
    except ValueError as exc:
        raise _fail(str(exc), 2) from exc
    raise typer.Exit(code)


@app.command()
def trace(
    trace_id: str = typer.Argument(..., help="32 hex digits, e.g. from an exemplar."),
    store: Path | None = typer.Option(None, help="Trace store directory (default: the running shop's, "
                                                 "else settings)."),
    logs: Path | None = typer.Option(None, help="Log directory (default: 'logs' beside the trace store)."),
) -> None:
    """Show the span waterfall of one trace from the local trace store, and its log lines."""
    trace_id = trace_id.strip().lower()
    if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id):
        raise _fail(f"not a trace id: {trace_id!r} (expected 32 hex digits)", 2)
    if store is None and (WORKDIR / "traces").is_dir():
        store = WORKDIR / "traces"
    directory = store or Path(load_settings().trace_store_dir)
    spans = find_trace(directory, trace_id)
    if not spans:
        raise _fail(f"trace {trace_id} not found in {directory}")
    print_trace(spans, console)
    log_dir = logs or (directory.parent / "logs" if store else Path(load_settings().log_directory))
    print_logs(trace_log_lines(log_dir, trace_id), console)


@app.command()
def demo(duration: float = typer.Option(60.0, min=5, max=1800, help="Seconds of load."),
         tps: float = typer.Option(4.0, min=0.5, max=500, help="Transactions (checkouts) per second."),
         fault: str = typer.Option("cti-slow", help="Fault switched on for the middle third ('none': no fault)."),
         workdir: Path = typer.Option(Path(".shopfds/demo"), help="Scratch directory (emptied first)."),
         free_ports: bool = typer.Option(False, help="Use free ports instead of the seed ports."),
         workers: int = WorkersOption) -> None:
    """up + load (a fault midway) + report + the slowest trace + down; nothing is left running."""
    from .demo import run_demo

    if fault != "none":
        try:
            _parse_fault(fault)
        except ValueError as exc:
            raise _fail(str(exc), 2) from exc
    raise typer.Exit(run_demo(duration, tps, None if fault == "none" else fault, workdir, console,
                              seed_ports=not free_ports, workers=workers))


@app.command()
def rules(out: Path = typer.Option(..., help="Directory to write the rule files to."),
          base_url: str | None = typer.Option(
              None, "--runbook-base-url",
              help="Base URL of docs/ in the runbook links (default: $SHOPFDS_RUNBOOK_BASE_URL, "
                   "else the admin service's pages on localhost:8003).")) -> None:
    """Write prometheus/rules with the runbook links under another base URL (mount them instead)."""
    from .rules import render_rules, runbook_base_url

    try:
        base = runbook_base_url(base_url)
    except ValueError as exc:
        raise _fail(str(exc), 2) from exc
    for path in render_rules(out, base):
        console.print(f"{path}  (runbooks under {base})")


def _parse_fault(text: str) -> Fault:
    from services.common.faults import parse_spec

    from .load.runner import Fault

    spec, _, when = text.partition("@")
    parse_spec(spec)  # ValueError names the problem
    start, _, end = when.partition("-")
    try:
        return Fault(spec, float(start or 0), float(end) if end else None)
    except ValueError as exc:
        raise ValueError(f"fault {text!r}: times must be seconds, e.g. cti-slow@20-40") from exc


def _state(workdir: Path) -> dict[str, Any]:
    from .stack import read_state

    state = read_state(workdir)
    if state is None:
        raise _fail(f"the shop is not running (no state in {workdir}); start it with `shopfds up`")
    return state


def _running_urls(workdir: Path) -> dict[str, str]:
    urls: dict[str, str] = _state(workdir)["urls"]
    return urls


if __name__ == "__main__":
    app()
