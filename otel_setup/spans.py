"""Span processors and exporter wrappers.

- :class:`SpanMetricsProcessor` derives duration histograms from the spans carrying an
  attribute (``specs.SpanMetric``; the FDS engines' ``fds_<engine>_engine_duration_seconds``),
  with an exemplar pointing at that span, so services only create spans (what the collector's
  spanmetrics connector would do, done in-process so the embedded default has it too).
- :class:`ScrubbingExporter` masks PII in attributes, events (exception messages and stack
  traces) and status descriptions before an exporter (OTLP, Sentry) sees a span. Query texts
  (``db.statement``, ``db.query.text``) are templates with placeholders, the same few dozen
  strings over and over: their scrubbed form is remembered (bounded) instead of running every
  pattern on every SQL span. An exporter that encodes spans itself can instead scrub each value
  while it encodes it, with the same functions (``scrub_attributes``, ``scrub_text``): the trace
  store does (``scrubs_itself``), which saves building a second span and walking it twice.
- :class:`CountingExporter` and :class:`CountingBatchProcessor` count what was exported,
  what failed and what was dropped from a full queue.
- :class:`current_span` is ``Tracer.start_as_current_span`` for the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol, TypeGuard, runtime_checkable

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import Histogram
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, Status, StatusCode

from .backoff import DownGate
from .guard import STATS, report_failure
from .scrub import scrub_mapping, scrub_text
from .specs import SpanMetric


class current_span:  # lower case: used as ``with current_span(...)``, like the method it stands for
    """``with current_span(tracer, name, attributes) as span``: what ``tracer.start_as_current_span``
    does (the span current inside the block, an ``Exception`` leaving it recorded on the span with
    an ERROR status, the span ended on the way out), as one small class instead of the SDK's two
    nested generator context managers: 11 µs less a span on this project's 2-core VM (57 against
    68 µs, opentelemetry-sdk 1.45.2), four times an FDS evaluation."""

    __slots__ = ("_token", "span")

    def __init__(self, tracer: trace.Tracer, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        self.span = tracer.start_span(name, attributes=attributes)

    def __enter__(self) -> trace.Span:
        self._token = context_api.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        context_api.detach(self._token)
        span = self.span
        # As use_span: an Exception is an error; a BaseException (a cancelled task) is not.
        if isinstance(exc, Exception) and span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        span.end()


class SpanMetricsProcessor(SpanProcessor):
    """Records the duration of every span carrying ``rule.attribute`` into that value's
    histogram and the breakdown histogram (``specs.SpanMetric``)."""

    def __init__(self, rule: SpanMetric, histograms: dict[str, Histogram], breakdown: Histogram) -> None:
        self._attribute = rule.attribute
        self._other = rule.other
        self._histograms = histograms
        self._breakdown = breakdown
        self._labels = {value: {rule.label: value} for value in (*histograms, rule.other)}

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        # Runs for every span of the process: the common case (no such attribute) leaves at
        # once, and a try block replaces guard(), whose generator context manager costs more.
        attributes = span.attributes
        value = attributes.get(self._attribute) if attributes else None
        if value is None:
            return
        try:
            span_context = span.get_span_context()
            if span_context is None or span.start_time is None or span.end_time is None:
                return
            key = str(value) if str(value) in self._histograms else self._other
            seconds = (span.end_time - span.start_time) / 1e9
            # The exemplar must point at this span, not at whatever is current on this thread.
            ctx = trace.set_span_in_context(NonRecordingSpan(span_context))
            histogram = self._histograms.get(key)
            if histogram is not None:
                histogram.record(seconds, context=ctx)
            self._breakdown.record(seconds, self._labels[key], context=ctx)
        except Exception as exc:
            report_failure("span-metrics", exc)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_TEMPLATE_KEYS = ("db.statement", "db.query.text")
_TEMPLATE_MAX_CHARS = 4096


@lru_cache(maxsize=512)
def _scrub_template(text: str) -> str:
    return scrub_text(text)


def plain_attributes(item: ReadableSpan | Event) -> Mapping[str, Any] | None:
    """The attributes of a finished span or of an event, to read only.

    ``ReadableSpan.attributes`` wraps the SDK's ``BoundedAttributes`` in a ``MappingProxyType``:
    every key read or iterated goes through Python-level ``Mapping`` methods (a missing key's
    ``get`` raises and catches a ``KeyError``). The plain dict under it is read when it is there,
    the public property otherwise."""
    raw = getattr(item, "_attributes", None)
    if type(raw) is dict:
        return raw
    inner = getattr(raw, "_dict", None)
    if type(inner) is dict:
        return inner
    return item.attributes


def scrub_attributes(attributes: Any) -> Any:
    """Span or event attributes with their PII masked: a new dict, or ``attributes`` itself
    when empty."""
    if not attributes:
        return attributes
    templates = {key: _scrub_template(value) for key in _TEMPLATE_KEYS
                 if isinstance(value := attributes.get(key), str) and len(value) <= _TEMPLATE_MAX_CHARS}
    if not templates:
        return scrub_mapping(attributes)
    return {**scrub_mapping({k: v for k, v in attributes.items() if k not in templates}), **templates}


def _unchanged(before: Any, after: Any) -> bool:
    """True when scrubbing replaced no value (scrubbers return the very object they were given
    when there is nothing to mask)."""
    if before is after:
        return True
    if not before:
        return not after
    return len(before) == len(after) and all(after.get(k) is v for k, v in before.items())


def scrub_span(span: ReadableSpan) -> ReadableSpan:
    """The span with its PII masked: the span itself when there was none (most spans), so the
    export thread builds a new span only for the few that carry something to mask."""
    status = span.status
    if status.description:
        description = scrub_text(status.description)
        if description is not status.description:
            status = Status(status.status_code, description)
    original = plain_attributes(span)
    attributes = scrub_attributes(original)
    events = [(e, plain_attributes(e)) for e in span.events]
    scrubbed = [(e, before, scrub_attributes(before)) for e, before in events]
    if (status is span.status and _unchanged(original, attributes)
            and all(_unchanged(before, after) for _, before, after in scrubbed)):
        return span
    return ReadableSpan(
        name=span.name,
        context=span.get_span_context(),
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=[Event(e.name, after, e.timestamp) for e, _, after in scrubbed],
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class ScrubbingExporter(SpanExporter):
    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        clean: list[ReadableSpan] = []
        for span in spans:
            try:
                clean.append(scrub_span(span))
            except Exception:
                count_scrub_error()  # never export an unscrubbed span: drop it and count it
        return self.inner.export(clean)

    def shutdown(self, **kwargs: Any) -> None:
        self.inner.shutdown(**kwargs)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


@runtime_checkable
class SelfScrubbingExporter(Protocol):
    """An exporter that masks PII itself while it encodes each span (``scrubs`` is True), so
    ``Telemetry.add_span_exporter`` puts no :class:`ScrubbingExporter` in front of it.

    ``export_scrubbed`` must do what :class:`ScrubbingExporter` does: a span whose scrubbing
    raises is never exported, and is counted as ``otel_setup_spans_dropped_total{exporter=
    "scrubber",reason="scrub_error"}``. It returns the result and the number of spans so dropped,
    which :class:`CountingExporter` leaves out of its own counts (as it never saw them before)."""

    scrubs: bool

    def export_scrubbed(self, spans: Sequence[ReadableSpan]) -> tuple[SpanExportResult, int]: ...


def scrubs_itself(exporter: SpanExporter) -> TypeGuard[SelfScrubbingExporter]:
    return isinstance(exporter, SelfScrubbingExporter) and exporter.scrubs is True


def count_scrub_error() -> None:
    STATS.add("otel_setup_spans_dropped_total", exporter="scrubber", reason="scrub_error")


class CountingExporter(SpanExporter):
    """Counts exported spans and failed exports; while the backend is known down
    (``backoff.DownGate``) a batch is dropped without being encoded, counted the same way
    with reason ``backend_down``. Spans a self-scrubbing exporter dropped for a scrub error are
    counted there only (``SelfScrubbingExporter``)."""

    def __init__(self, inner: SpanExporter, name: str) -> None:
        self.inner = inner
        self.name = name
        self.gate = DownGate()
        self._export_scrubbed = inner.export_scrubbed if scrubs_itself(inner) else None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self.gate.open():
            STATS.add("otel_setup_export_failures_total", exporter=self.name)
            STATS.add("otel_setup_spans_dropped_total", len(spans), exporter=self.name, reason="backend_down")
            return SpanExportResult.FAILURE
        unscrubbable = 0
        try:
            if self._export_scrubbed is not None:
                result, unscrubbable = self._export_scrubbed(spans)
            else:
                result = self.inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        count = len(spans) - unscrubbable
        if result is SpanExportResult.SUCCESS:
            self.gate.succeeded()
            STATS.add("otel_setup_spans_exported_total", count, exporter=self.name)
        else:
            self.gate.failed()
            STATS.add("otel_setup_export_failures_total", exporter=self.name)
            STATS.add("otel_setup_spans_dropped_total", count, exporter=self.name,
                      reason="export_failed")
        return result

    def shutdown(self, **kwargs: Any) -> None:
        try:
            self.inner.shutdown(**kwargs)
        except TypeError:
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class CountingBatchProcessor(BatchSpanProcessor):
    """A batch processor with a bounded queue that counts the spans it drops when full."""

    def __init__(self, exporter: SpanExporter, name: str, **kwargs: Any) -> None:
        super().__init__(exporter, **kwargs)
        self.name = name
        inner = self._batch_processor
        self._queue = getattr(inner, "_queue", None)
        self._capacity = getattr(inner, "_max_queue_size", None)

    def on_end(self, span: ReadableSpan) -> None:
        if (
            self._queue is not None
            and span.context is not None
            and span.context.trace_flags.sampled
            and len(self._queue) >= (self._capacity or 0)
        ):
            STATS.add("otel_setup_spans_dropped_total", exporter=self.name, reason="queue_full")
        super().on_end(span)
