"""``configure()``: traces, metrics with exemplars, span-derived metrics and Sentry in one call.

What is enabled depends only on the environment (see ``settings``):

- always: a tracer provider (sampling by environment), a meter provider whose metrics are
  served on the app's ``/metrics`` with exemplars (or on an internal port, behind a token:
  ``metrics_server``), the FDS engine span processor, and the local trace store so any
  exemplar's trace id can be looked up;
- an OTLP endpoint: traces and metrics (with exemplars) also go to that collector;
- ``SENTRY_DSN``: errors to Sentry linked to the active trace; sampled traces to Sentry's OTLP
  endpoint unless a collector is set (the collector forwards them then).

``configure`` is idempotent: a second call for the same service returns the same ``Telemetry``
(and instruments a new ``app`` if given). Providers are passed explicitly to everything we
instrument; the OTel globals are set once, for third-party instrumentations.
"""

from __future__ import annotations

import atexit
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal.exemplar import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    ExemplarFilter,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from . import catalog, dependencies, logs, sampling, semconv
from .exposition import PullReader, make_registry
from .guard import guard, log
from .instruments import Instruments, views
from .metrics_server import MetricsServer
from .settings import TelemetrySettings, load_settings
from .spans import CountingBatchProcessor, CountingExporter, EngineMetricsProcessor, ScrubbingExporter
from .trace_store import TraceStoreExporter

_lock = threading.RLock()
_active: Telemetry | None = None
_globals_set = False


class Telemetry:
    """Everything ``configure`` built for one service; ``shutdown()`` flushes and stops it."""

    def __init__(self, service_name: str, settings: TelemetrySettings) -> None:
        self.service_name = service_name
        self.settings = settings
        self.prefix = catalog.metric_prefix(service_name)
        self.specs = catalog.specs_for(service_name)
        self.enabled = not settings.sdk_disabled
        semconv.apply(settings.semconv_stability_opt_in)  # before any instrumentation exists
        self.resource = _resource(service_name, settings)
        self.file_stem = _file_stem(service_name, self.resource)
        self.sampler = sampling.EngineRecordingSampler(sampling.base_sampler(settings))
        self.tracer_provider: Any = trace_api.NoOpTracerProvider()
        self.meter_provider: Any = metrics_api.NoOpMeterProvider()
        self.pull_reader = PullReader()
        self.registry = make_registry(self.pull_reader)
        self.span_exporters: dict[str, SpanExporter] = {}
        self.otlp_metric_reader: MetricReader | None = None
        self._apps: list[Any] = []
        self._closed = False
        self.sentry_enabled = False
        self.metrics_server = self._metrics_listener()
        if self.enabled:
            self._build_providers()
        meter = self.meter_provider.get_meter("otel_setup", settings.service_version)
        self.instruments = Instruments(meter, self.specs)
        # Resolved once: every request records into these.
        self.in_progress = self.instruments.in_progress.get(f"{self.prefix}_http_requests_in_progress", {})
        self.http_requests = self.instruments[f"{self.prefix}_http_requests_total"]
        self.http_duration = self.instruments[f"{self.prefix}_http_request_duration_seconds"]
        self.http_errors = self.instruments[f"{self.prefix}_errors_total"]
        # Known label values start at 0 (Prometheus practice: rate() and alerts see the series
        # before the first error rather than an absent metric).
        for error_type in ("http_500", "http_503"):
            self.http_errors.add(0, {"error_type": error_type})
        self.tracer = self.tracer_provider.get_tracer("otel_setup", settings.service_version)
        if self.enabled:
            self._add_engine_metrics()
            self._add_exporters()
            if settings.instrument_dependencies:
                dependencies.instrument(self)
        # One bounded, idempotent shutdown at exit instead of each provider's (and Sentry's) own.
        atexit.register(self.shutdown)

    # -- construction -------------------------------------------------------------------
    def _build_providers(self) -> None:
        readers: list[MetricReader] = [self.pull_reader]
        if self.settings.otlp_metrics_enabled:
            with guard("otlp-metrics"):
                from .otlp import metric_reader

                self.otlp_metric_reader = metric_reader(self.settings)
                readers.append(self.otlp_metric_reader)
        self.meter_provider = MeterProvider(
            metric_readers=readers,
            resource=self.resource,
            views=views(self.specs, self.settings.metric_cardinality_limit),
            exemplar_filter=_exemplar_filter(self.settings.exemplar_filter),
            shutdown_on_exit=False,
        )
        self.tracer_provider = TracerProvider(resource=self.resource, sampler=self.sampler,
                                              shutdown_on_exit=False)

    def _add_engine_metrics(self) -> None:
        breakdown = self.instruments.get("fds_engine_breakdown_seconds")
        if breakdown is None:  # only the FDS catalog has engine metrics
            return
        per_engine = {e: self.instruments[f"fds_{e}_engine_duration_seconds"] for e in catalog.ENGINES}
        self.tracer_provider.add_span_processor(EngineMetricsProcessor(per_engine, breakdown))

    def _add_exporters(self) -> None:
        s = self.settings
        if s.trace_store_dir:
            with guard("trace-store"):
                store = TraceStoreExporter(
                    s.trace_store_dir, self.file_stem, int(s.trace_store_max_mb * 1024 * 1024)
                )
                self.add_span_exporter("trace_store", store, scrub=True)
        if s.otlp_enabled and (s.otlp_endpoint or s.otlp_traces_endpoint):
            with guard("otlp-traces"):
                from .otlp import span_exporter

                self.add_span_exporter("otlp", span_exporter(s), scrub=True)

    def add_span_exporter(self, name: str, exporter: SpanExporter, *, scrub: bool = True) -> None:
        """Export sampled spans through a bounded batch queue (scrubbed, counted)."""
        if not self.enabled or name in self.span_exporters:
            return
        wrapped: SpanExporter = CountingExporter(exporter, name)
        if scrub:
            wrapped = ScrubbingExporter(wrapped)
        processor = CountingBatchProcessor(wrapped, name)
        self.span_exporters[name] = exporter
        self.tracer_provider.add_span_processor(processor)

    def _metrics_listener(self) -> MetricsServer | None:
        """``/metrics`` on ``SHOPFDS_METRICS_PORT``, when set (the app then has no ``/metrics``)."""
        s = self.settings
        if not (s.metrics_port and s.metrics_path):
            return None
        token = s.metrics_token.get_secret_value() if s.metrics_token else None
        try:
            return MetricsServer(self.registry, s.metrics_host, s.metrics_port, s.metrics_path, token)
        except OSError as exc:  # port taken: not served anywhere rather than on the public app
            log.warning("cannot serve %s on %s:%s (%s); metrics are not served", s.metrics_path,
                        s.metrics_host, s.metrics_port, exc)
            return None

    # -- use --------------------------------------------------------------------------------
    def instrument_app(self, app: Any) -> None:
        """Add tracing, HTTP metrics, error capture and ``/metrics`` to a FastAPI app, once."""
        if any(a is app for a in self._apps):
            return
        from .asgi import instrument

        instrument(app, self)
        self._apps.append(app)

    def force_flush(self, timeout_millis: int = 5000) -> None:
        """Send what is queued (spans, OTLP metrics and logs, Sentry events), in parallel, waiting
        at most ``timeout_millis`` even with a dead endpoint."""
        import sentry_sdk

        flushers: list[tuple[str, Callable[[], object]]] = [("logs", lambda: logs.flush_logs(timeout_millis))]
        if self.enabled:
            flushers.append(("traces", lambda: self.tracer_provider.force_flush(timeout_millis)))
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
        global _active
        with _lock:
            if self._closed:
                return
            self._closed = True
            log_provider = None
            if _active is self:
                _active = None
                log_provider = logs.detach_logging()
            dependencies.uninstrument(self)
            if self.metrics_server is not None:
                with guard("metrics-listener"):
                    self.metrics_server.close()
        _run_bounded("shutdown", self._stoppers(log_provider), self.settings.shutdown_timeout)

    def _stoppers(self, log_provider: Any) -> list[tuple[str, Callable[[], object]]]:
        timeout_ms = int(self.settings.shutdown_timeout * 1000)
        stoppers: list[tuple[str, Callable[[], object]]] = []
        if self.enabled:
            stoppers.append(("traces", self.tracer_provider.shutdown))
            stoppers.append(("metrics", lambda: self.meter_provider.shutdown(timeout_millis=timeout_ms)))
        if log_provider is not None:
            stoppers.append(("logs", log_provider.shutdown))
        if self.sentry_enabled:
            import sentry_sdk

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


def _resource(service_name: str, settings: TelemetrySettings) -> Resource:
    ours = Resource(
        {
            "service.name": settings.service_name_override or service_name,
            "service.namespace": "shopfds",
            "service.version": settings.service_version,
            "deployment.environment": settings.environment,
            "deployment.environment.name": settings.environment,
            "service.instance.id": str(uuid.uuid4()),
        }
    )
    # OTEL_RESOURCE_ATTRIBUTES is read by the SDK's detector; the deployment's values win.
    detected = Resource.create({})
    env_attrs = {k: v for k, v in detected.attributes.items()
                 if not k.startswith("telemetry.sdk") and k != "service.name"}
    return Resource.create(dict(ours.attributes)).merge(Resource(env_attrs))


def _file_stem(service_name: str, resource: Resource) -> str:
    """Name of this process's trace-store and log files: ``<service>``, or ``<service>.<instance>``
    when the deployment names the instance (``OTEL_RESOURCE_ATTRIBUTES=service.instance.id=...``,
    as ``shopfds up --workers`` does). Each process of a service then writes and rotates only its
    own files; readers take every ``*.jsonl*`` of the directory."""
    named = OTELResourceDetector().detect().attributes.get("service.instance.id")  # the deployment's only
    instance = str(resource.attributes.get("service.instance.id", ""))
    if not named or instance != str(named):
        return service_name
    return f"{service_name}.{''.join(c if c.isalnum() or c in '-_' else '_' for c in instance)}"


def _exemplar_filter(name: str) -> ExemplarFilter:
    if name == "always_on":
        return AlwaysOnExemplarFilter()
    if name == "always_off":
        return AlwaysOffExemplarFilter()
    return TraceBasedExemplarFilter()


def configure(service_name: str, *, app: Any = None,
              settings: TelemetrySettings | None = None) -> Telemetry:
    """Set up telemetry for one service (idempotent) and instrument ``app`` when given."""
    global _active, _globals_set
    with _lock:
        if _active is not None and _active.service_name != service_name:
            log.warning("otel_setup already configured for %s; reconfiguring for %s",
                        _active.service_name, service_name)
            _active.shutdown()
        if _active is None:
            resolved = settings or load_settings()
            telemetry = Telemetry(service_name, resolved)
            with guard("logging"):
                logs.setup_logging(telemetry)
            if resolved.sentry_dsn:
                from .sentry import init_sentry

                telemetry.sentry_enabled = init_sentry(
                    resolved.sentry_dsn, resolved.environment, True, None,
                    release=resolved.service_version, telemetry=telemetry)
            if telemetry.enabled and not _globals_set:
                trace_api.set_tracer_provider(telemetry.tracer_provider)
                metrics_api.set_meter_provider(telemetry.meter_provider)
                _globals_set = True
            _active = telemetry
        if app is not None:
            _active.instrument_app(app)
        return _active


def current() -> Telemetry | None:
    return _active

