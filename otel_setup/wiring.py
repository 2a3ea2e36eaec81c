"""``configure()``: the one place that builds and wires a service's telemetry.

What is enabled depends only on the environment (see ``settings``):

- always: a tracer provider (sampling by environment), a meter provider whose metrics are
  served on the app's ``/metrics`` with exemplars (or on an internal port, behind a token:
  ``metrics_server``), the span-derived metrics of the service (``catalog.span_metrics_for``:
  the FDS engines), and the local trace store so any exemplar's trace id can be looked up;
- an OTLP endpoint: traces and metrics (with exemplars) also go to that collector;
- ``SENTRY_DSN``: errors to Sentry linked to the active trace; sampled traces to Sentry's OTLP
  endpoint unless a collector is set (the collector forwards them then).

Each part is built by a function that returns it (the SDK's ``_init_tracing``/``_init_metrics``
shape); ``configure`` assembles them into a ``Telemetry``, makes it the active one (``state``)
and is idempotent: a second call for the same service returns the same ``Telemetry`` (and
instruments a new ``app`` if given). Providers are passed explicitly to everything we
instrument; the OTel globals are set once, for third-party instrumentations.
"""

from __future__ import annotations

import atexit
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI
from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    ExemplarFilter,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span
from prometheus_client import CollectorRegistry

from . import catalog, dependencies, logs, sampling, semconv, sentry
from .catalog import Attr
from .exposition import PullReader, make_registry
from .guard import guard, log
from .instruments import HttpInstruments, Instruments, views
from .metrics_server import MetricsServer
from .settings import TelemetrySettings, load_settings
from .spans import SpanMetricsProcessor
from .specs import MetricSpec, SpanMetric, metric_prefix
from .state import STATE, current, release
from .telemetry import Telemetry
from .trace_store import TraceStoreExporter


def configure(service_name: str, *, app: FastAPI | None = None, settings: TelemetrySettings | None = None,
              metrics: tuple[MetricSpec, ...] | None = None,
              span_metrics: tuple[SpanMetric, ...] | None = None) -> Telemetry:
    """Set up telemetry for one service (idempotent) and instrument ``app`` when given.

    ``metrics`` and ``span_metrics`` are the service's metric specs and span-derived metrics;
    by default the shop's catalog entry for ``service_name`` (any other name gets the HTTP and
    telemetry-health metrics only)."""
    with STATE.lock:
        active = STATE.active
        if active is not None and active.service_name != service_name:
            log.warning("otel_setup already configured for %s; reconfiguring for %s",
                        active.service_name, service_name)
            active.shutdown()
            active = None
        if active is None:
            specs = metrics if metrics is not None else catalog.specs_for(service_name)
            derived = span_metrics if span_metrics is not None else catalog.span_metrics_for(service_name)
            active = _build(service_name, settings or load_settings(), specs, derived)
            STATE.active = active
            if active.enabled and not STATE.globals_set:
                trace_api.set_tracer_provider(active.tracer_provider)
                metrics_api.set_meter_provider(active.meter_provider)
                STATE.globals_set = True
        if app is not None:
            active.instrument_app(app)
        return active


def _build(service_name: str, settings: TelemetrySettings, specs: tuple[MetricSpec, ...],
           span_metrics: tuple[SpanMetric, ...]) -> Telemetry:
    semconv.apply(settings.semconv_stability_opt_in)  # before any instrumentation exists
    logs.mute_header_echo()
    enabled = not settings.sdk_disabled
    prefix = metric_prefix(service_name)
    resource = _resource(service_name, settings)
    file_stem = _file_stem(service_name, resource)
    sampler = sampling.RecordingSampler(sampling.base_sampler(settings),
                                        frozenset(rule.attribute for rule in span_metrics))
    pull_reader = PullReader()
    otlp_reader = _init_otlp_metrics(settings) if enabled else None
    meter_provider = (_init_metrics(settings, resource, specs, pull_reader, otlp_reader) if enabled
                      else metrics_api.NoOpMeterProvider())
    tracer_provider = (TracerProvider(resource=resource, sampler=sampler, shutdown_on_exit=False) if enabled
                       else trace_api.NoOpTracerProvider())
    instruments = Instruments(meter_provider.get_meter("otel_setup", settings.service_version), specs,
                              settings.metric_cardinality_limit)
    registry = make_registry(pull_reader)
    telemetry = Telemetry(
        service_name=service_name, settings=settings, prefix=prefix, specs=specs, resource=resource,
        file_stem=file_stem, sampler=sampler, tracer_provider=tracer_provider, meter_provider=meter_provider,
        tracer=tracer_provider.get_tracer("otel_setup", settings.service_version),
        pull_reader=pull_reader, registry=registry, instruments=instruments,
        http=HttpInstruments(instruments, prefix), otlp_metric_reader=otlp_reader,
        metrics_server=_init_metrics_listener(settings, registry),
    )
    telemetry.on_shutdown.append(release)
    if isinstance(tracer_provider, TracerProvider):
        for rule in span_metrics:
            tracer_provider.add_span_processor(_span_metrics_processor(rule, instruments))
        _add_exporters(telemetry)
        if settings.instrument_dependencies:
            dependencies.instrument(tracer_provider)
            telemetry.dependencies_instrumented = True
    with guard("logging"):
        telemetry.logging = logs.init_logging(settings, service_name, file_stem, resource, otlp=enabled)
    if settings.sentry_dsn:
        telemetry.sentry_enabled = sentry.start(settings.sentry_dsn, settings.environment,
                                                settings.service_version, exit_flush=False)
        if telemetry.sentry_enabled:
            _send_traces_to_sentry(telemetry, settings.sentry_dsn)
    # One bounded, idempotent shutdown at exit instead of each provider's (and Sentry's) own.
    atexit.register(telemetry.shutdown)
    return telemetry


def _init_otlp_metrics(settings: TelemetrySettings) -> MetricReader | None:
    if not settings.otlp_metrics_enabled:
        return None
    with guard("otlp-metrics"):
        from .otlp import metric_reader

        return metric_reader(settings)
    return None


def _init_metrics(settings: TelemetrySettings, resource: Resource, specs: tuple[MetricSpec, ...],
                  pull_reader: PullReader, otlp_reader: MetricReader | None) -> MeterProvider:
    readers: list[MetricReader] = [pull_reader] + ([otlp_reader] if otlp_reader is not None else [])
    return MeterProvider(
        metric_readers=readers,
        resource=resource,
        views=views(specs, settings.metric_cardinality_limit),
        exemplar_filter=_exemplar_filter(settings.exemplar_filter),
        shutdown_on_exit=False,
    )


def _span_metrics_processor(rule: SpanMetric, instruments: Instruments) -> SpanMetricsProcessor:
    return SpanMetricsProcessor(rule, {value: instruments[name] for value, name in rule.histograms.items()},
                                instruments[rule.breakdown])


def _add_exporters(telemetry: Telemetry) -> None:
    s = telemetry.settings
    if s.trace_store_dir:
        with guard("trace-store"):
            # Scrubs while it encodes each span: no ScrubbingExporter in front of it.
            store = TraceStoreExporter(s.trace_store_dir, telemetry.file_stem,
                                       int(s.trace_store_max_mb * 1024 * 1024), scrub=True)
            telemetry.add_span_exporter("trace_store", store, scrub=True)
    if s.otlp_enabled and (s.otlp_endpoint or s.otlp_traces_endpoint):
        with guard("otlp-traces"):
            from .otlp import span_exporter

            telemetry.add_span_exporter("otlp", span_exporter(s), scrub=True)


def _send_traces_to_sentry(telemetry: Telemetry, dsn: str) -> None:
    """Sampled spans to Sentry's OTLP endpoint, through our scrubbed, bounded exporter, unless
    the collector forwards them (its Sentry overlay, after tail sampling) or they are off."""
    s = telemetry.settings
    if not s.sentry_traces or (s.otlp_enabled and s.sentry_traces_via_collector):
        return
    from .otlp import http_span_exporter

    url, headers = sentry.sentry_otlp_endpoint(dsn)
    telemetry.add_span_exporter("sentry", http_span_exporter(url, headers, s.otlp_timeout_s))


def _init_metrics_listener(s: TelemetrySettings, registry: CollectorRegistry) -> MetricsServer | None:
    """``/metrics`` on ``SHOPFDS_METRICS_PORT``, when set (the app then has no ``/metrics``)."""
    if not (s.metrics_port and s.metrics_path):
        return None
    token = s.metrics_token.get_secret_value() if s.metrics_token else None
    try:
        return MetricsServer(registry, s.metrics_host, s.metrics_port, s.metrics_path, token)
    except OSError as exc:  # port taken: not served anywhere rather than on the public app
        log.warning("cannot serve %s on %s:%s (%s); metrics are not served", s.metrics_path,
                    s.metrics_host, s.metrics_port, exc)
        return None


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


# -- the seed's helpers that act on the active telemetry ----------------------------------------

def init_sentry(dsn: str | None = None, environment: str | None = None,
                enable_tracing: bool = True, traces_sample_rate: float | None = None, *,
                release: str | None = None) -> bool:
    """Start sentry-sdk for errors; with ``enable_tracing``, sampled traces go to Sentry too.

    ``traces_sample_rate`` (seed: 1.0 in development, 0.1 in production), when given, sets the
    root sampling ratio of the OTel sampler, which decides what Sentry receives.
    Returns False (and does nothing) without a DSN or if the DSN is invalid.
    """
    if not dsn:
        return False
    active = current()
    if not sentry.start(dsn, environment, release, exit_flush=active is None):
        return False
    if active is not None:
        active.sentry_enabled = True
        if traces_sample_rate is not None:
            from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

            active.sampler.inner = ParentBasedTraceIdRatio(traces_sample_rate)
        if enable_tracing:
            _send_traces_to_sentry(active, dsn)
    return True


def record_http_request(method: str, endpoint: str, status_code: int, duration: float | None = None) -> None:
    """Count one request (and its duration) under the service's ``<prefix>_http_*`` metrics."""
    active = current()
    if active is not None:
        active.http.record(method, endpoint, status_code, duration)


@contextmanager
def start_transaction(name: str, op: str = "function") -> Iterator[Span]:
    """A unit of work as an OTel span (Sentry reads ``sentry.op`` from OTLP spans)."""
    active = current()
    tracer = active.tracer if active is not None else trace_api.get_tracer("otel_setup")
    with tracer.start_as_current_span(name, attributes={Attr.SENTRY_OP: op}) as span:
        yield span
