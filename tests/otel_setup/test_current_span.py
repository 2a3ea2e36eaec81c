"""``current_span`` against the SDK's ``start_as_current_span``: the same spans, statuses and events
on the same block, through a real tracer provider."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_setup.spans import current_span


def _run(block: Callable[[trace.Tracer, Callable[..., Any]], None]) -> dict[str, ReadableSpan]:
    """The spans ``block`` makes with the SDK's context manager and with ours, by which made them."""
    out = {}
    for label, factory in (("sdk", lambda t, n, a=None: t.start_as_current_span(n, attributes=a)),
                           ("ours", current_span)):
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        block(provider.get_tracer("test"), factory)
        (span,) = exporter.get_finished_spans()
        out[label] = span
    return out


def _shape(span: ReadableSpan) -> tuple[Any, ...]:
    return (span.name, dict(span.attributes or {}), span.status.status_code, span.status.description,
            [(e.name, {k: v for k, v in (e.attributes or {}).items() if k != "exception.stacktrace"})
             for e in span.events], span.end_time is not None)


def test_the_span_is_current_inside_and_ended_after() -> None:
    seen = []

    def block(tracer: trace.Tracer, factory: Callable[..., Any]) -> None:
        with factory(tracer, "fds.engine.rule", {"fds.engine": "rule"}) as span:
            seen.append(trace.get_current_span() is span)
            span.set_attribute("fds.status", "ok")
        seen.append(trace.get_current_span() is trace.INVALID_SPAN)

    spans = _run(block)
    assert seen == [True, True, True, True]
    assert _shape(spans["ours"]) == _shape(spans["sdk"]) == (
        "fds.engine.rule", {"fds.engine": "rule", "fds.status": "ok"}, trace.StatusCode.UNSET, None, [], True)


def test_an_exception_is_recorded_marked_and_raised() -> None:
    def block(tracer: trace.Tracer, factory: Callable[..., Any]) -> None:
        with pytest.raises(ValueError, match="bad card"), factory(tracer, "fds.aggregates"):
            raise ValueError("bad card")

    spans = _run(block)
    assert _shape(spans["ours"]) == _shape(spans["sdk"])
    assert spans["ours"].status.status_code is trace.StatusCode.ERROR
    assert spans["ours"].status.description == "ValueError: bad card"
    assert spans["ours"].events[0].attributes["exception.type"] == "ValueError"


def test_a_cancelled_block_is_not_an_error() -> None:
    def block(tracer: trace.Tracer, factory: Callable[..., Any]) -> None:
        async def work() -> None:
            with factory(tracer, "fds.engine.ml"):
                await asyncio.sleep(10)

        async def main() -> None:
            task = asyncio.create_task(work())
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())

    spans = _run(block)
    assert _shape(spans["ours"]) == _shape(spans["sdk"])
    assert spans["ours"].status.status_code is trace.StatusCode.UNSET and not spans["ours"].events
