"""``shopfds demo``: run an instrumented FDS under load and show SLA figures and trace links.

Everything is local: the app under uvicorn, a Prometheus with exemplar storage when the binary
is installed, the trace store on disk. Nothing is left running afterwards.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from otel_setup.catalog import FDS_SLA_SECONDS
from otel_setup.trace_store import find_trace

from . import procs
from .histogram import histograms, slowest_exemplars
from .trace_view import print_trace


async def _load(url: str, requests: int, concurrency: int, console: Console) -> tuple[int, int]:
    ok = errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    with Progress(TextColumn("[bold]load"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("{task.fields[tps]:.0f} req/s, {task.fields[errors]} errors"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("load", total=requests, tps=0.0, errors=0)
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            async def worker() -> None:
                nonlocal ok, errors
                while not queue.empty():
                    i = queue.get_nowait()
                    amount = 2_500_000 if i % 17 == 0 else 30_000 + (i % 50) * 1000
                    try:
                        r = await client.post("/v1/fds/evaluate",
                                              json={"transaction_id": str(uuid.uuid4()), "amount": amount})
                        ok, errors = (ok + 1, errors) if r.status_code == 200 else (ok, errors + 1)
                    except httpx.HTTPError:
                        errors += 1
                    progress.update(task, advance=1, errors=errors,
                                    tps=(ok + errors) / max(time.monotonic() - started, 1e-3))

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, errors


def _prometheus_p95(prom: str) -> float | None:
    # Cumulative since start, like the /metrics figures above: the run is shorter than a rate window.
    query = "histogram_quantile(0.95, sum by (le) (fds_evaluation_duration_seconds_bucket))"
    try:
        result = httpx.get(f"{prom}/api/v1/query", params={"query": query}).json()["data"]["result"]
        return float(result[0]["value"][1]) if result else None
    except (httpx.HTTPError, KeyError, IndexError, ValueError):
        return None


def _report(console: Console, metrics_text: str, prom_p95: float | None, store: Path) -> None:
    fds = histograms(metrics_text, "fds_evaluation_duration_seconds")[""]
    engines = histograms(metrics_text, "fds_engine_breakdown_seconds", by="engine")
    table = Table(title="FDS evaluation latency (SLA 100 ms)")
    for col in ("metric", "value", "target"):
        table.add_column(col)
    for q in (0.5, 0.95, 0.99):
        table.add_row(f"FDS P{int(q * 100)}", f"{fds.quantile(q) * 1000:.1f} ms",
                      "< 100 ms" if q == 0.95 else "")
    if prom_p95 is not None:
        table.add_row("FDS P95 (Prometheus histogram_quantile)", f"{prom_p95 * 1000:.1f} ms", "")
    over = fds.count - dict(fds.buckets).get(FDS_SLA_SECONDS, 0.0)
    table.add_row("evaluations / over SLA", f"{fds.count:.0f} / {over:.0f}", "")
    for engine, hist in sorted(engines.items()):
        table.add_row(f"{engine} engine P95", f"{hist.quantile(0.95) * 1000:.1f} ms", "")
    console.print(table)
    slow = slowest_exemplars(engines.values(), limit=3)
    if not slow:
        console.print("no exemplars recorded")
        return
    console.print("[bold]slowest exemplars[/] (engine span -> its trace):")
    for value, labels, bound in slow:
        console.print(f"  {value * 1000:7.1f} ms  bucket le={bound}  trace_id={labels['trace_id']}"
                      f"  -> shopfds trace {labels['trace_id']}")
    spans = find_trace(store, slow[0][1]["trace_id"])
    if spans:
        print_trace(spans, console)


def run_demo(requests: int, concurrency: int, slow_rate: float, workdir: Path, console: Console) -> int:
    shutil.rmtree(workdir, ignore_errors=True)
    store = workdir / "traces"
    env = {"SHOPFDS_TRACE_STORE_DIR": str(store), "SHOPFDS_DEMO_CTI_SLOW_RATE": str(slow_rate),
           "OTEL_BSP_SCHEDULE_DELAY": "500"}
    with ExitStack() as stack:
        url = stack.enter_context(procs.uvicorn_app("shopfds.demo_app:app", env, workdir / "fds.log"))
        console.print(f"FDS demo app on {url} (metrics: {url}/metrics)")
        prom = None
        if procs.prometheus_binary():
            prom = stack.enter_context(procs.prometheus([url], workdir / "prometheus"))
            console.print(f"Prometheus with exemplar storage on {prom}")
        else:
            console.print("[yellow]prometheus not installed: figures come from /metrics only[/]")
        ok, errors = asyncio.run(_load(url, requests, concurrency, console))
        time.sleep(2.5)  # one more scrape and one trace-store flush
        metrics_text = httpx.get(f"{url}/metrics",
                                 headers={"Accept": "application/openmetrics-text"}).text
        _report(console, metrics_text, _prometheus_p95(prom) if prom else None, store)
    console.print(f"{ok} ok, {errors} errors; all demo processes stopped")
    return 0 if errors == 0 else 1
