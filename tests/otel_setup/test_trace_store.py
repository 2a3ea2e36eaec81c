"""The local trace store scrubs each span while it encodes it, in one pass.

No ``ScrubbingExporter`` stands in front of it (the OTLP and Sentry exporters keep theirs): its
records must hold exactly what a scrubbed span would give, a span whose scrubbing raises must be
dropped and counted as before and never written, and the counts of exported and failed spans
must leave such a span out as they did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import Status, StatusCode

from otel_setup import spans as spans_module
from otel_setup.guard import STATS
from otel_setup.spans import CountingBatchProcessor, CountingExporter, ScrubbingExporter, scrub_span
from otel_setup.trace_store import TraceStoreExporter, iter_records, span_to_record

CARD = "4111111111111111"
MASKED = "411111******1111"
EMAIL = "jane.doe@example.com"


def _chain(telemetry: Any, name: str) -> Any:
    processors = telemetry.tracer_provider._active_span_processor._span_processors
    processor = next(p for p in processors if isinstance(p, CountingBatchProcessor) and p.name == name)
    return processor._batch_processor._exporter


def _pii_span(tracer: Any, name: str = "charge", **extra: Any) -> ReadableSpan:
    attributes = {"payment.note": f"card {CARD}", "card_number": CARD, "enduser.id": EMAIL,
                  "db.query.text": f"SELECT 1 FROM cards WHERE pan = '{CARD}'", "fds.score": 12.5, **extra}
    with tracer.start_as_current_span(name, attributes=attributes) as span:
        try:
            raise RuntimeError(f"gateway rejected card {CARD} of {EMAIL}")
        except RuntimeError as exc:
            span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"declined {CARD}"))
    return span  # type: ignore[no-any-return]


def _as_stored(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(orjson.dumps(record, default=str))  # type: ignore[no-any-return]


def _assert_scrubbed(record: dict[str, Any]) -> None:
    assert CARD not in json.dumps(record) and "jane.doe" not in json.dumps(record)
    attributes = record["attributes"]
    assert attributes["payment.note"] == f"card {MASKED}"
    assert attributes["card_number"] == MASKED
    assert attributes["enduser.id"] == "j***@example.com"
    assert attributes["db.query.text"] == f"SELECT 1 FROM cards WHERE pan = '{MASKED}'"
    assert attributes["fds.score"] == 12.5
    [event] = record["events"]
    assert event["attributes"]["exception.message"] == f"gateway rejected card {MASKED} of j***@example.com"
    assert record["status_description"] == f"declined {MASKED}"


def test_the_store_scrubs_attributes_events_and_status_itself(make_telemetry, tmp_path: Path) -> None:
    telemetry, memory = make_telemetry("fds")
    store = _chain(telemetry, "trace_store")
    assert isinstance(store, CountingExporter) and isinstance(store.inner, TraceStoreExporter)
    assert store.inner.scrubs
    assert isinstance(_chain(telemetry, "memory"), ScrubbingExporter)  # every other exporter keeps it
    exported = STATS.total("otel_setup_spans_exported_total", exporter="trace_store")

    _pii_span(telemetry.tracer)
    telemetry.force_flush()

    raw = b"".join(path.read_bytes() for path in (tmp_path / "traces").glob("*.jsonl*"))
    assert CARD.encode() not in raw and b"jane.doe" not in raw
    [record] = [r for r in iter_records(tmp_path / "traces") if r["name"] == "charge"]
    _assert_scrubbed(record)
    # The very record the scrubbed span that the other exporters got would give.
    [scrubbed] = [s for s in memory.get_finished_spans() if s.name == "charge"]
    assert record == _as_stored(span_to_record(scrubbed))
    assert STATS.total("otel_setup_spans_exported_total", exporter="trace_store") == exported + 1


def test_one_pass_records_equal_scrub_span_then_record() -> None:
    tracer = TracerProvider().get_tracer("test")
    spans = [_pii_span(tracer), _pii_span(tracer, password="hunter2", tags=(f"x {EMAIL}", "ok"))]
    with tracer.start_as_current_span("clean", attributes={"http.route": "/v1/fds/evaluate"}) as clean:
        pass
    spans_and_clean: list[ReadableSpan] = [*spans, clean]  # type: ignore[list-item]
    for span in spans_and_clean:
        assert span_to_record(span, scrub=True) == span_to_record(scrub_span(span))
    _assert_scrubbed(_as_stored(span_to_record(spans[0], scrub=True)))
    # Without scrub (the existing call): the span as it is.
    assert span_to_record(spans[0])["attributes"]["card_number"] == CARD


def test_an_unscrubbed_store_writes_spans_as_they_are(tmp_path: Path) -> None:
    span = _pii_span(TracerProvider().get_tracer("test"))
    raw_store = TraceStoreExporter(tmp_path / "raw", "svc", 1 << 20)
    assert not raw_store.scrubs
    assert raw_store.export([span]) is SpanExportResult.SUCCESS
    assert CARD.encode() in (tmp_path / "raw" / "svc.jsonl").read_bytes()
    scrubbing = TraceStoreExporter(tmp_path / "scrubbed", "svc", 1 << 20, scrub=True)
    assert scrubbing.export([span]) is SpanExportResult.SUCCESS
    [record] = iter_records(tmp_path / "scrubbed")
    _assert_scrubbed(record)


@pytest.fixture
def failing_scrub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scrubbing raises for a span carrying ``boom`` (a bug in a scrubbing rule)."""
    real = spans_module.scrub_mapping

    def scrub_mapping(data: Any, depth: int = 0) -> dict[Any, Any]:
        if "boom" in data:
            raise ValueError("a scrubbing rule failed")
        return real(data, depth)

    monkeypatch.setattr(spans_module, "scrub_mapping", scrub_mapping)


def _scrub_errors() -> int:
    return STATS.total("otel_setup_spans_dropped_total", exporter="scrubber", reason="scrub_error")


@pytest.mark.usefixtures("failing_scrub")
def test_a_span_whose_scrubbing_raises_is_dropped_counted_and_never_written(make_telemetry, tmp_path: Path) -> None:
    telemetry, memory = make_telemetry("fds")
    errors = _scrub_errors()
    exported = STATS.total("otel_setup_spans_exported_total", exporter="trace_store")

    _pii_span(telemetry.tracer, "before")
    _pii_span(telemetry.tracer, "unscrubbable", boom=f"card {CARD}")
    _pii_span(telemetry.tracer, "after")
    telemetry.force_flush()

    names = [r["name"] for r in iter_records(tmp_path / "traces")]
    assert sorted(names) == ["after", "before"]
    raw = b"".join(path.read_bytes() for path in (tmp_path / "traces").glob("*.jsonl*"))
    assert CARD.encode() not in raw
    assert sorted(s.name for s in memory.get_finished_spans()) == ["after", "before"]
    assert _scrub_errors() == errors + 2  # once by the store, once by the memory exporter's scrubber
    assert STATS.total("otel_setup_spans_exported_total", exporter="trace_store") == exported + 2


@pytest.mark.usefixtures("failing_scrub")
def test_a_failed_write_counts_only_the_spans_that_were_scrubbed(tmp_path: Path) -> None:
    tracer = TracerProvider().get_tracer("test")
    batch = [_pii_span(tracer, "a"), _pii_span(tracer, "b", boom="x"), _pii_span(tracer, "c")]
    store = TraceStoreExporter(tmp_path, "svc", 1 << 20, scrub=True)
    exporter = CountingExporter(store, "store-test")
    errors = _scrub_errors()

    assert exporter.export(batch) is SpanExportResult.SUCCESS
    assert [r["name"] for r in iter_records(tmp_path)] == ["a", "c"]
    assert STATS.total("otel_setup_spans_exported_total", exporter="store-test") == 2

    store.path.unlink()
    store.path.mkdir()  # the file cannot be opened for writing any more
    assert exporter.export(batch) is SpanExportResult.FAILURE
    assert STATS.total("otel_setup_spans_dropped_total", exporter="store-test", reason="export_failed") == 2
    assert _scrub_errors() == errors + 2
