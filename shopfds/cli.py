"""``shopfds``: the project's command line."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from otel_setup.settings import load_settings
from otel_setup.trace_store import find_trace

from .trace_view import print_logs, print_trace, trace_log_lines

app = typer.Typer(help="ShopFDS observability: demo, trace lookup.", no_args_is_help=True,
                  add_completion=False)
# Piped output (CI logs, files) is not cut at 80 columns: trace names and ids must stay whole.
console = Console() if sys.stdout.isatty() else Console(width=160)


@app.command()
def demo(
    requests: int = typer.Option(400, min=1, max=100_000, help="Evaluations to send."),
    concurrency: int = typer.Option(8, min=1, max=256, help="Concurrent clients."),
    slow_rate: float = typer.Option(0.05, min=0.0, max=1.0, help="Share of slow CTI lookups."),
    workdir: Path = typer.Option(Path(".shopfds/demo"), help="Where traces and Prometheus data go."),
) -> None:
    """Run an instrumented FDS under load; print SLA figures and follow the slowest exemplar."""
    from .demo import run_demo

    raise typer.Exit(run_demo(requests, concurrency, slow_rate, workdir, console))


@app.command()
def trace(
    trace_id: str = typer.Argument(..., help="32 hex digits, e.g. from an exemplar."),
    store: Path | None = typer.Option(None, help="Trace store directory (default: settings)."),
    logs: Path | None = typer.Option(None, help="Log directory (default: 'logs' beside the trace store)."),
) -> None:
    """Show the span waterfall of one trace from the local trace store, and its log lines."""
    trace_id = trace_id.strip().lower()
    if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id):
        console.print(f"[red]not a trace id:[/] {trace_id!r} (expected 32 hex digits)")
        raise typer.Exit(2)
    directory = store or Path(load_settings().trace_store_dir)
    spans = find_trace(directory, trace_id)
    if not spans:
        console.print(f"[red]trace {trace_id} not found in {directory}[/]")
        raise typer.Exit(1)
    print_trace(spans, console)
    log_dir = logs or (directory.parent / "logs" if store else Path(load_settings().log_directory))
    print_logs(trace_log_lines(log_dir, trace_id), console)


if __name__ == "__main__":
    app()
