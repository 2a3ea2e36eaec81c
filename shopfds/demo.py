"""``shopfds demo``: the whole point of the project in about two minutes, without Docker.

1. ``up``: the four services (SQLite and in-process caches under the scratch directory) and,
   when installed, a local Prometheus with exemplar storage and the project's rules;
2. ``load``: shoppers and labeled fraudsters (Locust) for ``duration`` seconds, with a fault
   (``cti-slow`` by default) switched on for the middle third, so that SLA violations, slow
   buckets and their exemplars appear;
3. ``report``: the SLO figures over the run (PASS/FAIL against the seed's targets), the slowest
   exemplars with their trace links, and an HTML copy;
4. the slowest exemplar followed to its trace: the span waterfall shows which engine was slow,
   and the log lines of that trace;
5. ``down``: every process started is stopped, whatever happened.

The exit code is 0 when the demo ran (the SLA verdict is part of the report, not a failure).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.console import Console

from otel_setup.trace_store import find_trace

from .load.runner import Fault, run_load
from .report import ExemplarLink, collect
from .report.console import print_report
from .report.html import write_html
from .stack import SEED_PORTS, down, port_in_use, up
from .trace_view import print_logs, print_trace, trace_log_lines


def run_demo(duration: float, tps: float, fault: str | None, workdir: Path, console: Console,
             seed_ports: bool = True, workers: int = 1) -> int:
    shutil.rmtree(workdir, ignore_errors=True)
    console.rule("[bold]ShopFDS demo")
    try:
        stack = up(workdir, env={"OTEL_BSP_SCHEDULE_DELAY": "500"}, interval="2s", seed_ports=seed_ports,
                   workers=workers)
    except (RuntimeError, TimeoutError) as exc:
        console.print(f"[red]could not start the shop: {exc}[/]")
        return 1
    try:
        for name, url in stack.urls.items():
            console.print(f"{name:10} {url}")
        console.print(f"prometheus {stack.prometheus or '[yellow]not installed: figures from /metrics[/]'}")
        faults = [Fault(fault, duration / 3, 2 * duration / 3)] if fault else []
        result = run_load(stack.urls, tps, duration, faults, workdir / "load", console)
        for line in result.summary(tps):
            console.print(f"load: {line}", markup=False)
        time.sleep(4)  # a last scrape and trace-store flush
        figures = collect(stack.metrics, stack.prometheus, f"{int(duration) + 15}s", trace_store=workdir / "traces")
        print_report(figures, console)
        console.print(f"HTML report: {write_html(figures, workdir / 'report.html')}")
        _follow_slowest(figures.exemplars, workdir, console)
        return 0 if any(figures.targets.values()) and result.requests else 1
    finally:
        stopped = down(workdir)
        busy = [f":{p}" for p in SEED_PORTS.values() if seed_ports and port_in_use(p)]
        console.print(f"stopped {', '.join(stopped)}" + (f"; [red]still listening: {busy}[/]" if busy else ""))


def _follow_slowest(exemplars: list[ExemplarLink], workdir: Path, console: Console) -> None:
    found = [e for e in exemplars if e.in_store]
    if not found:
        console.print("[yellow]no exemplar trace in the local store to follow[/]")
        return
    slowest = max(found, key=lambda e: e.seconds)
    console.rule(f"slowest exemplar {slowest.seconds * 1000:.1f} ms -> trace {slowest.trace_id}")
    print_trace(find_trace(workdir / "traces", slowest.trace_id), console)
    print_logs(trace_log_lines(workdir / "logs", slowest.trace_id), console)
    console.print(f"follow it yourself: shopfds trace {slowest.trace_id} --store {workdir / 'traces'}")
