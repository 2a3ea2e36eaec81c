"""Per-request telemetry cost of an in-process ASGI call to a small FastAPI app.

    python -m bench.telemetry_cost [--requests N] [--runs R] [--passes P] [--warmup W] [--json FILE]

Four variants of the same app (``GET /v1/products/{product_id}``), each measured in its own
subprocess because OpenTelemetry and sentry-sdk keep process-global state:

- ``bare``: FastAPI only;
- ``otel_setup``: ``otel_setup.configure("ecommerce", app=app)``, the embedded default (100 %
  sampling, batched local JSONL trace store, metrics with exemplars, ``/metrics``);
- ``contrib_sentry_defaults``: what a user would assemble instead: SDK tracer provider with a
  ``BatchSpanProcessor`` writing JSONL, a meter provider with ``PrometheusMetricReader``,
  ``FastAPIInstrumentor.instrument_app`` with default options and ``sentry_sdk.init`` with
  default integrations and ``traces_sample_rate=1.0`` (its DSN points at a closed port);
- ``otel_setup_disabled``: ``otel_setup`` with ``sdk_disabled=True``.

Then the breakdown per component, a ladder of variants on an FDS-shaped app (``configure("fds")``,
``GET /v1/fds/items/{item_id}``), each adding one component to the one before (``LADDER``): HTTP
metrics; the server span; the engine spans (``fds.aggregates`` and three ``fds.engine.<name>``
with the span-derived engine metrics); exemplars; the local trace store without scrubbing
(JSON on the export thread); scrubbing; OTLP protobuf export of traces and metrics to a local
sink process; one log line per request (JSON, trace-correlated, to the log file and stdout).
The difference between two neighbours is the price of the component.

Each child builds its scope dicts itself and awaits ``app(scope, receive, send)`` in a loop on
one event loop (no HTTP client in the measurement), warms up (W requests), then times its runs
of N requests and prints one JSON line. Time is the process's CPU time (all its threads: the
export threads' work on the batches is part of the price) per request, which another process on
a shared machine disturbs far less than wall-clock time. The R runs of a variant are split over P passes (one
subprocess per variant and pass); the variant order is reversed on every other pass (ABBA) so
drift favours no variant. The report gives the median over all runs of the mean CPU
microseconds per request, the cost added to ``bare``, the spans that reached the JSONL store per request
(below the expected count when a batch queue overflowed) and the ratio of the added costs.
Progress goes to stderr, the table to stdout. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from rich.console import Console
from rich.table import Table

from otel_setup.catalog import Attr, engine_span
from otel_setup.trace_store import span_to_record

BARE = "bare"
OURS = "otel_setup"
CONTRIB = "contrib_sentry_defaults"
DISABLED = "otel_setup_disabled"
HEADLINE = (BARE, OURS, CONTRIB, DISABLED)
# The breakdown: each step adds one component to the step before it (see ``ladder_app``).
LADDER: dict[str, dict[str, Any]] = {
    "fds_disabled": {"settings": {"sdk_disabled": True}},
    "+http_metrics": {"settings": {"traces_sampler": "always_off", "exemplar_filter": "always_off"}},
    "+server_span": {"settings": {"exemplar_filter": "always_off"}},
    "+engine_spans": {"settings": {"exemplar_filter": "always_off"}, "engine_spans": True},
    "+exemplars": {"engine_spans": True},
    "+trace_store_json": {"engine_spans": True, "raw_store": True},
    "+scrubbing": {"engine_spans": True, "store": True},
    "+otlp_protobuf": {"engine_spans": True, "store": True, "otlp": True},
    "+logs": {"engine_spans": True, "store": True, "otlp": True, "log": True},
}
VARIANTS = HEADLINE + tuple(LADDER)
RATIO_TARGET = 0.5
ADDED_TARGET_US = 100.0
PRODUCT_IDS = 50
ROUTE = "/v1/products/{product_id}"
SENTRY_DSN = "http://key@127.0.0.1:9/1"  # closed port: sentry's transport fails in the background
PACKAGES = ("opentelemetry-sdk", "opentelemetry-instrumentation-fastapi", "sentry-sdk", "fastapi",
            "starlette")
REPO_ROOT = Path(__file__).resolve().parents[1]
# Variables that would change what a child measures (sampler, exporters, DSN, ...).
_ENV_PREFIXES = ("OTEL_", "SENTRY_", "SHOPFDS_")
_ENV_NAMES = ("ENVIRONMENT", "APP_VERSION")
HEADERS = [
    (b"host", b"shop.example.com"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) bench/1.0"),
    (b"accept", b"application/json"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"accept-language", b"ko-KR,ko;q=0.9,en;q=0.8"),
    (b"x-request-id", b"0b7c6a4e-5f43-4d7e-9a51-2f0c1d9e8b7a"),
    (b"connection", b"keep-alive"),
]

Scope = dict[str, Any]
Message = dict[str, Any]


# -- the app and the variants (child side) ----------------------------------------------------
def make_app() -> FastAPI:
    app = FastAPI()

    @app.get(ROUTE)
    async def get_product(product_id: int) -> dict[str, Any]:
        return {"id": product_id, "name": "Keyboard", "price": 50000}

    return app


class JsonlSpanExporter(SpanExporter):
    """The user's file exporter: ``json.dumps`` per span, one append per batch (like ours)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        payload = "".join(json.dumps(span_to_record(s), default=str, separators=(",", ":")) + "\n"
                          for s in spans)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(payload)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


@contextmanager
def bare_app(store: Path) -> Iterator[FastAPI]:
    yield make_app()


@contextmanager
def otel_setup_app(store: Path, *, disabled: bool = False) -> Iterator[FastAPI]:
    import otel_setup
    from otel_setup.settings import TelemetrySettings

    app = make_app()
    # pydantic-settings fields have defaults that mypy (without the pydantic plugin) cannot see
    settings = TelemetrySettings(sdk_disabled=disabled, trace_store_dir=str(store))  # type: ignore[call-arg]
    telemetry = otel_setup.configure("ecommerce", app=app, settings=settings)
    try:
        yield app
    finally:
        telemetry.shutdown()


@contextmanager
def otel_setup_disabled_app(store: Path) -> Iterator[FastAPI]:
    with otel_setup_app(store, disabled=True) as app:
        yield app


SINK = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *args): pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@contextmanager
def otlp_sink() -> Iterator[str]:
    """An OTLP/HTTP endpoint in a process of its own (its work is not the measured process's)."""
    proc = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield f"http://127.0.0.1:{proc.stdout.readline().strip()}"
    finally:
        proc.terminate()
        proc.wait(10)


def ladder_app(store: Path, step: dict[str, Any]) -> Iterator[FastAPI]:
    """The FDS-shaped app with the components of one ladder step."""
    import logging

    import otel_setup
    from otel_setup.settings import TelemetrySettings
    from otel_setup.trace_store import TraceStoreExporter

    app = FastAPI()
    engine_spans, log = step.get("engine_spans", False), logging.getLogger("bench.fds")

    @app.get("/v1/fds/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        if engine_spans:
            with tracer.start_as_current_span("fds.aggregates"):
                pass
            for engine in ("rule", "ml", "cti"):
                name, attributes = engine_span(engine)
                with tracer.start_as_current_span(name, attributes=attributes) as span:
                    span.set_attribute(Attr.FDS_SCORE, 12.5)
        if step.get("log"):
            log.info("evaluated %s", item_id, extra={"decision": "approve"})
        return {"id": item_id, "decision": "approve"}

    with ExitStack() as stack:
        options: dict[str, Any] = {"trace_store_dir": str(store) if step.get("store") else "",
                                   "log_format": "json" if step.get("log") else "off",
                                   "log_dir": str(store / "logs"), **step.get("settings", {})}
        if step.get("otlp"):
            options["otlp_endpoint"] = stack.enter_context(otlp_sink())
        telemetry = otel_setup.configure("fds", app=app, settings=TelemetrySettings(**options))  # type: ignore[call-arg]
        stack.callback(telemetry.shutdown)
        if step.get("raw_store"):
            telemetry.add_span_exporter("trace_store", TraceStoreExporter(store, "fds", 1 << 30), scrub=False)
        tracer = telemetry.tracer
        yield app


@contextmanager
def contrib_sentry_app(store: Path) -> Iterator[FastAPI]:
    import sentry_sdk
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    sentry_sdk.init(dsn=SENTRY_DSN, traces_sample_rate=1.0)  # before the app exists or serves
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(JsonlSpanExporter(store / "spans.jsonl")))
    meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    app = make_app()
    FastAPIInstrumentor.instrument_app(app, tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield app
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()
        sentry_sdk.get_client().close(timeout=0)


BUILDERS: dict[str, Callable[[Path], AbstractContextManager[FastAPI]]] = {
    BARE: bare_app,
    OURS: otel_setup_app,
    CONTRIB: contrib_sentry_app,
    DISABLED: otel_setup_disabled_app,
    **{name: contextmanager(lambda store, step=step: ladder_app(store, step)) for name, step in LADDER.items()},
}


# -- the ASGI driver (child side) -------------------------------------------------------------
def scope_templates(prefix: str = "/v1/products") -> list[Scope]:
    """One ``traceparent``-free GET scope per product id; copied before each call."""
    templates = []
    for product_id in range(1, PRODUCT_IDS + 1):
        path = f"{prefix}/{product_id}"
        templates.append({
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
            "root_path": "", "query_string": b"", "headers": HEADERS,
            "client": ("127.0.0.1", 51234), "server": ("127.0.0.1", 8000),
        })
    return templates


class Driver:
    """Awaits the app directly; counts responses that are not 200."""

    def __init__(self, app: Any, prefix: str = "/v1/products") -> None:
        self.app = app
        self.templates = scope_templates(prefix)
        self.failures = 0
        self.sent = 0

    async def receive(self) -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            self.failures += 1

    async def run(self, count: int) -> float:
        """Mean CPU microseconds (this process, all threads) per request over ``count`` requests."""
        templates, receive, send, app = self.templates, self.receive, self.send, self.app
        start = time.process_time_ns()
        for i in range(self.sent, self.sent + count):
            await app(dict(templates[i % PRODUCT_IDS]), receive, send)
        elapsed = time.process_time_ns() - start
        self.sent += count
        return elapsed / count / 1000.0


async def measure(app: Any, requests: int, runs: int, warmup: int, prefix: str) -> tuple[list[float], int]:
    driver = Driver(app, prefix)
    await driver.run(warmup)
    means = []
    for _ in range(runs):
        gc.collect()
        means.append(await driver.run(requests))
    return means, driver.failures


def stored_spans(store: Path) -> int:
    """Spans written to the JSONL files, to see whether the batch exporter kept up."""
    total = 0
    for path in store.glob("*.jsonl*"):  # not the log files of the "+logs" step (a folder below)
        with path.open("rb") as handle:
            total += sum(1 for _ in handle)
    return total


def run_variant(variant: str, requests: int, runs: int, warmup: int) -> int:
    with tempfile.TemporaryDirectory(prefix=f"bench-{variant}-") as tmp:
        with BUILDERS[variant](Path(tmp)) as app:
            prefix = "/v1/fds/items" if variant in LADDER else "/v1/products"
            means, failures = asyncio.run(measure(app, requests, runs, warmup, prefix))
        spans = stored_spans(Path(tmp))  # after shutdown: the batch queues are flushed
    if failures:
        print(f"{variant}: {failures} responses were not 200", file=sys.stderr)
        return 1
    served = warmup + runs * requests
    print(json.dumps({"variant": variant, "runs_us": means, "requests_served": served,
                      "spans_stored": spans}), flush=True)
    return 0


# -- the parent -------------------------------------------------------------------------------
def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_ENV_PREFIXES) and k not in _ENV_NAMES}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


def spawn(variant: str, runs: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run one child for ``runs`` timed runs and return its JSON record."""
    cmd = [sys.executable, "-m", "bench.telemetry_cost", "--variant", variant,
           "--requests", str(args.requests), "--runs", str(runs), "--warmup", str(args.warmup)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), cwd=REPO_ROOT,
                          check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{"variant"')]  # not a log line
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"variant {variant} failed with exit code {proc.returncode}")
    record: dict[str, Any] = json.loads(lines[-1])
    return record


def runs_per_pass(runs: int, passes: int) -> list[int]:
    """``runs`` split over at most ``passes`` passes, earlier passes taking the remainder."""
    passes = min(runs, passes)
    return [runs // passes + (1 if i < runs % passes else 0) for i in range(passes)]


def collect(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """Every child's record per variant; every other pass runs the variants in reverse order."""
    records: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    plan = runs_per_pass(args.runs, args.passes)
    for index, runs in enumerate(plan):
        order = VARIANTS if index % 2 == 0 else tuple(reversed(VARIANTS))
        for variant in order:
            label = f"[pass {index + 1}/{len(plan)}] {variant} ({runs} x {args.requests} requests)"
            print(f"{label} ...", file=sys.stderr, flush=True)
            started = time.monotonic()
            records[variant].append(spawn(variant, runs, args))
            print(f"{label} done in {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    return records


def environment_info() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count() or 0
    return {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "packages": versions, "nproc": nproc}


def variant_figures(records: list[dict[str, Any]]) -> dict[str, Any]:
    runs = [float(x) for r in records for x in r["runs_us"]]
    served = sum(r["requests_served"] for r in records)
    return {"median_us": statistics.median(runs), "runs_us": runs,
            "spans_stored_per_request": sum(r["spans_stored"] for r in records) / served}


def summarise(records: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> dict[str, Any]:
    figures = {v: variant_figures(records[v]) for v in VARIANTS}
    medians = {v: figures[v]["median_us"] for v in VARIANTS}
    added = {v: medians[v] - medians[BARE] for v in VARIANTS}
    ratio = added[OURS] / added[CONTRIB] if added[CONTRIB] > 0 else None
    names = list(LADDER)
    breakdown = [{"step": name, "median_us": medians[name],
                  "component_us": medians[name] - medians[names[i - 1]] if i else medians[name] - medians[BARE]}
                 for i, name in enumerate(names)]
    return {
        **environment_info(),
        "breakdown": breakdown,
        "breakdown_total_us": medians[names[-1]] - medians[names[0]],
        "added_target_us": ADDED_TARGET_US,
        "requests_per_run": args.requests, "runs": args.runs,
        "runs_per_pass": runs_per_pass(args.runs, args.passes),
        "warmup": args.warmup,
        "variants": {v: {**figures[v], "added_us": added[v]} for v in VARIANTS},
        "ratio": ratio,
        "ratio_definition": f"added_us[{OURS}] / added_us[{CONTRIB}]",
        "ratio_target": RATIO_TARGET,
        "disabled_added_us": added[DISABLED],
        "disabled_added_pct_of_bare": 100.0 * added[DISABLED] / medians[BARE],
    }


def breakdown_table(summary: dict[str, Any]) -> Table:
    table = Table(title="Breakdown on the FDS-shaped app: each step adds one component (CPU µs per request)")
    for column in ("step", "µs/request", "component µs"):
        table.add_column(column, justify="left" if column == "step" else "right", no_wrap=True)
    for row in summary["breakdown"]:
        table.add_row(row["step"], f"{row['median_us']:.1f}", f"{row['component_us']:+.1f}")
    return table


def results_table(summary: dict[str, Any]) -> Table:
    table = Table(title="Telemetry cost per in-process ASGI request (CPU µs, median of run means)")
    table.add_column("variant", no_wrap=True)
    for column in ("µs/request", "runs min-max", "added µs vs bare", "spans stored/req"):
        table.add_column(column, justify="right", no_wrap=True)
    for name, data in summary["variants"].items():
        if name in LADDER:
            continue
        spread = f"{min(data['runs_us']):.1f}-{max(data['runs_us']):.1f}"
        added = "-" if name == BARE else f"{data['added_us']:+.1f}"
        table.add_row(name, f"{data['median_us']:.1f}", spread, added,
                      f"{data['spans_stored_per_request']:.2f}")
    return table


def report(summary: dict[str, Any]) -> None:
    console = Console(highlight=False, soft_wrap=True)
    console.width = max(console.width, 100)  # the table needs ~95 columns, also when piped
    console.print(f"Python {summary['python']} ({summary['implementation']}), nproc {summary['nproc']}")
    console.print(", ".join(f"{k} {v}" for k, v in summary["packages"].items()))
    console.print(f"per variant: {summary['runs']} runs of {summary['requests_per_run']} requests, "
                  f"split over passes {summary['runs_per_pass']} (one subprocess each, order "
                  f"reversed every other pass), warmup {summary['warmup']} per subprocess")
    console.print(results_table(summary), soft_wrap=False)
    added = summary["variants"][OURS]["added_us"]
    console.print(f"otel_setup adds {added:+.1f} µs per request (target <= {ADDED_TARGET_US:.0f})")
    console.print(breakdown_table(summary), soft_wrap=False)
    console.print(f"all components on the FDS-shaped app: {summary['breakdown_total_us']:+.1f} µs per request "
                  "over otel_setup disabled")
    ratio = summary["ratio"]
    shown = "n/a (contrib+sentry added no cost)" if ratio is None else f"{ratio:.2f}"
    console.print(f"otel_setup added cost / contrib+sentry added cost = {shown} "
                  f"(target <= {RATIO_TARGET:.2f})")
    console.print(f"otel_setup_disabled added cost = {summary['disabled_added_us']:+.1f} µs/request "
                  f"({summary['disabled_added_pct_of_bare']:+.1f} % of bare)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000, help="timed requests per run")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per variant (over all passes)")
    parser.add_argument("--passes", type=int, default=2,
                        help="subprocesses per variant sharing the runs, order reversed every pass")
    parser.add_argument("--warmup", type=int, default=300, help="untimed requests before the runs")
    parser.add_argument("--json", type=Path, help="write all figures to this file")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args(argv)
    if min(args.requests, args.runs, args.passes) < 1 or args.warmup < 0:
        parser.error("--requests, --runs and --passes must be >= 1, --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.variant:
        return run_variant(args.variant, args.requests, args.runs, args.warmup)
    summary = summarise(collect(args), args)
    report(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
