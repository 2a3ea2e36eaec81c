"""``Telemetry``: what ``configure`` built for one service, and its flush and shutdown.

It holds the parts (providers, readers, instruments, exporters, log handlers) and never builds
them: ``wiring.configure`` does, each part by a function that returns it. Sampled spans reach
each exporter through a bounded, counted, scrubbing batch queue (``add_span_exporter``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sentry_sdk
from fastapi import FastAPI
from opentelemetry.metrics import MeterProvider as MeterProviderApi
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Tracer
from opentelemetry.trace import TracerProvider as TracerProviderApi
from prometheus_client import CollectorRegistry

from . import asgi, dependencies
from .exposition import PullReader
from .guard import guard, log
from .instruments import HttpInstruments, Instruments
from .logs import LogSetup
from .metrics_server import MetricsServer
from .sampling import RecordingSampler
from .settings import TelemetrySettings
from .spans import CountingBatchProcessor, CountingExporter, ScrubbingExporter, scrubs_itself
from .specs import MetricSpec


@dataclass(eq=False)
class Telemetry:
    """Everything ``configure`` built for one service; ``shutdown()`` flushes and stops it."""

    service_name: str
    settings: TelemetrySettings
    prefix: str
    specs: tuple[MetricSpec, ...]
    resource: Resource
    file_stem: str  # name of this process's trace-store and log files
    sampler: RecordingSampler
    tracer_provider: TracerProviderApi  # the SDK's, or the API's no-op one with OTEL_SDK_DISABLED
    meter_provider: MeterProviderApi
    tracer: Tracer
    pull_reader: PullReader
    registry: CollectorRegistry
    instruments: Instruments
    http: HttpInstruments
    otlp_metric_reader: MetricReader | None = None
    metrics_server: MetricsServer | None = None
    logging: LogSetup = field(default_factory=lambda: LogSetup([], None))
    span_exporters: dict[str, SpanExporter] = field(default_factory=dict)
    sentry_enabled: bool = False
    dependencies_instrumented: bool = False
    # Run once at shutdown, before anything stops (``wiring``: no longer the active instance).
    on_shutdown: list[Callable[[Telemetry], None]] = field(default_factory=list)
    _apps: list[FastAPI] = field(default_factory=list)
    _closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def enabled(self) -> bool:
        return not self.settings.sdk_disabled

    @property
    def in_progress(self) -> dict[str, int]:
        return self.http.in_progress

    def add_span_exporter(self, name: str, exporter: SpanExporter, *, scrub: bool = True) -> None:
        """Export sampled spans through a bounded batch queue (scrubbed, counted). An exporter
        that scrubs each span itself while encoding it (``spans.scrubs_itself``: the trace
        store) gets no ``ScrubbingExporter`` in front of it."""
        if not isinstance(self.tracer_provider, TracerProvider) or name in self.span_exporters:
            return  # telemetry off: nothing is exported
        wrapped: SpanExporter = CountingExporter(exporter, name)
        if scrub and not scrubs_itself(exporter):
            wrapped = ScrubbingExporter(wrapped)
        self.span_exporters[name] = exporter
        self.tracer_provider.add_span_processor(CountingBatchProcessor(wrapped, name))

    def instrument_app(self, app: FastAPI) -> None:
        """Add tracing, HTTP metrics, error capture and ``/metrics`` to a FastAPI app, once."""
        if any(a is app for a in self._apps):
            return
        asgi.instrument(app, http=self.http, tracer=self.tracer if self.enabled else None,
                        settings=self.settings, registry=self.registry, flush=self.force_flush)
        self._apps.append(app)

    def force_flush(self, timeout_millis: int = 5000) -> None:
        """Send what is queued (spans, OTLP metrics and logs, Sentry events), in parallel, waiting
        at most ``timeout_millis`` even with a dead endpoint."""
        flushers: list[tuple[str, Callable[[], object]]] = [
            ("logs", lambda: self.logging.flush(timeout_millis))]
        if isinstance(self.tracer_provider, TracerProvider):
            provider = self.tracer_provider
            flushers.append(("traces", lambda: provider.force_flush(timeout_millis)))
        if self.otlp_metric_reader is not None:
            reader = self.otlp_metric_reader  # not the pull reader: a collect there eats exemplars
            flushers.append(("metrics", lambda: reader.force_flush(timeout_millis)))
        if self.sentry_enabled:
            flushers.append(("sentry", lambda: sentry_sdk.get_client().flush(timeout=timeout_millis / 1000)))
        _run_bounded("flush", flushers, timeout_millis / 1000)

    def shutdown(self) -> None:
        """Flush and stop; bounded by ``SHOPFDS_SHUTDOWN_TIMEOUT`` even with a dead endpoint.

        Traces, metrics, OTLP logs and Sentry stop in parallel against one deadline, so a dead
        collector does not eat the time Sentry needs for its last events (or the reverse);
        what is still unsent at the deadline is dropped with its daemon thread.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for hook in self.on_shutdown:
            with guard("shutdown-hook"):
                hook(self)
        log_provider = self.logging.detach()
        if self.dependencies_instrumented:
            dependencies.uninstrument()
        if self.metrics_server is not None:
            with guard("metrics-listener"):
                self.metrics_server.close()
        _run_bounded("shutdown", self._stoppers(log_provider), self.settings.shutdown_timeout)

    def _stoppers(self, log_provider: LoggerProvider | None) -> list[tuple[str, Callable[[], object]]]:
        timeout_ms = int(self.settings.shutdown_timeout * 1000)
        stoppers: list[tuple[str, Callable[[], object]]] = []
        if isinstance(self.tracer_provider, TracerProvider):
            stoppers.append(("traces", self.tracer_provider.shutdown))
        if isinstance(self.meter_provider, MeterProvider):
            meters = self.meter_provider
            stoppers.append(("metrics", lambda: meters.shutdown(timeout_millis=timeout_ms)))
        if log_provider is not None:
            stoppers.append(("logs", log_provider.shutdown))
        if self.sentry_enabled:
            stoppers.append(("sentry", lambda: sentry_sdk.get_client().close(timeout=self.settings.shutdown_timeout)))
        return stoppers


def _run_bounded(what: str, parts: list[tuple[str, Callable[[], object]]], timeout: float) -> None:
    """Run each part in its own daemon thread; return when all are done or ``timeout`` passed."""
    def run(call: Callable[[], object]) -> None:
        with guard(what):
            call()

    deadline = time.monotonic() + timeout
    workers = [threading.Thread(target=run, args=(call,), name=f"otel-setup-{what}-{part}", daemon=True)
               for part, call in parts]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    if late := [w.name.rsplit("-", 1)[1] for w in workers if w.is_alive()]:
        log.warning("telemetry %s exceeded %.1fs (%s); unsent data dropped", what, timeout, ", ".join(late))
