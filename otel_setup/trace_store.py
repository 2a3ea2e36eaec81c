"""The local trace store: sampled spans as JSON lines, one file per service process.

Spans are encoded with orjson on the batch processor's export thread, which holds the GIL while
it works: the standard library's encoder took about a quarter of that thread's time. The store
configured by ``wiring`` scrubs each value while it builds the span's record (``scrub=True``),
with the functions ``spans.ScrubbingExporter`` uses, instead of having a scrubbed copy of the
span built first and then walked again; a span whose scrubbing raises is dropped and counted.

It makes every exemplar on ``/metrics`` resolvable without a collector, Jaeger or Sentry:
``find_trace(trace_id)`` returns the spans of one trace from every service's file, and
``shopfds trace TRACE_ID`` prints them. Each export batch is one ``write`` on a file opened
with ``O_APPEND``, so lines from concurrent batches never interleave. A file over its size
limit is rotated once to ``<name>.jsonl.1``; lookups read both.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .scrub import scrub_text
from .spans import count_scrub_error, plain_attributes, scrub_attributes

_Parts = tuple[dict[str, Any], list[dict[str, Any]], str | None]

# (service.name, service.instance.id) by Resource: a process has one, read once instead of twice
# a span. Keyed by identity (a Resource hashes its attributes as JSON) and holding the Resource,
# so that its id is not reused while cached.
_RESOURCE_FIELDS: dict[int, tuple[Resource | None, Any, Any]] = {}
_RESOURCE_FIELDS_MAX = 16


def _resource_fields(resource: Resource | None) -> tuple[Any, Any]:
    cached = _RESOURCE_FIELDS.get(id(resource))
    if cached is None or cached[0] is not resource:
        attributes = resource.attributes if resource else {}
        cached = (resource, attributes.get("service.name"), attributes.get("service.instance.id"))
        if len(_RESOURCE_FIELDS) >= _RESOURCE_FIELDS_MAX:
            _RESOURCE_FIELDS.clear()
        _RESOURCE_FIELDS[id(resource)] = cached
    return cached[1], cached[2]


def _parts(span: ReadableSpan, scrub: bool) -> _Parts:
    """The span's attributes, events and status description as the record holds them; with
    ``scrub``, masked as ``spans.scrub_span`` masks them (raises if scrubbing does)."""
    description = span.status.description
    if not scrub:
        return (dict(plain_attributes(span) or {}),
                [{"name": e.name, "timestamp": e.timestamp, "attributes": dict(plain_attributes(e) or {})}
                 for e in span.events],
                description)
    # scrub_attributes returns a new dict (or its argument when empty: replaced by a new one).
    return (scrub_attributes(plain_attributes(span)) or {},
            [{"name": e.name, "timestamp": e.timestamp, "attributes": scrub_attributes(plain_attributes(e)) or {}}
             for e in span.events],
            scrub_text(description) if description else description)


def _record(span: ReadableSpan, parts: _Parts) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None  # finished SDK spans always have one
    parent = span.parent
    service, instance = _resource_fields(span.resource)
    start, end = span.start_time or 0, span.end_time or 0
    attributes, events, description = parts
    status = span.status
    # Ids as format_trace_id / format_span_id write them, at less than half their cost.
    return {
        "trace_id": ctx.trace_id.to_bytes(16, "big").hex(),
        "span_id": ctx.span_id.to_bytes(8, "big").hex(),
        "parent_span_id": parent.span_id.to_bytes(8, "big").hex() if parent else None,
        "name": span.name,
        "service": service,
        "instance": instance,
        "kind": span.kind._name_,  # .name is a descriptor call per span
        "start_unix_nano": start,
        "end_unix_nano": end,
        "duration_ms": round((end - start) / 1e6, 3),
        "status": status.status_code._name_,
        "status_description": description,
        "attributes": attributes,
        "events": events,
    }


def span_to_record(span: ReadableSpan, *, scrub: bool = False) -> dict[str, Any]:
    """One span as a trace-store record. With ``scrub``, its attribute values, event attributes
    and status description are masked as ``spans.scrub_span`` masks them (an exception from
    scrubbing propagates: the caller must then not write the span)."""
    return _record(span, _parts(span, scrub))


def _line(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE)


class TraceStoreExporter(SpanExporter):
    """Appends spans to ``<directory>/<service>.jsonl``. With ``scrub`` it masks PII itself while
    it encodes each span (``spans.SelfScrubbingExporter``): ``Telemetry.add_span_exporter`` then
    puts no ``ScrubbingExporter`` in front of it."""

    def __init__(self, directory: str | os.PathLike[str], service: str, max_bytes: int, *,
                 scrub: bool = False) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"{service}.jsonl"
        self.max_bytes = max_bytes
        self.scrubs = scrub
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.scrubs:
            return self.export_scrubbed(spans)[0]
        self._write(b"".join(_line(span_to_record(s)) for s in spans))
        return SpanExportResult.SUCCESS

    def export_scrubbed(self, spans: Sequence[ReadableSpan]) -> tuple[SpanExportResult, int]:
        """Write ``spans`` scrubbed; a span whose scrubbing raises is dropped and counted
        (``scrub_error``), never written. Returns the result and the number so dropped."""
        lines: list[bytes] = []
        unscrubbable = 0
        try:
            for span in spans:
                try:
                    parts = _parts(span, scrub=True)
                except Exception:
                    count_scrub_error()
                    unscrubbable += 1
                    continue
                lines.append(_line(_record(span, parts)))
            if lines:
                self._write(b"".join(lines))
        except Exception:
            return SpanExportResult.FAILURE, unscrubbable
        return SpanExportResult.SUCCESS, unscrubbable

    def _write(self, payload: bytes) -> None:
        with self._lock:
            self._rotate_if_full()
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, payload)
            finally:
                os.close(fd)

    def _rotate_if_full(self) -> None:
        try:
            if self.path.stat().st_size >= self.max_bytes:
                os.replace(self.path, self.path.with_suffix(".jsonl.1"))
        except FileNotFoundError:
            pass

    def shutdown(self, **kwargs: Any) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _lines(directory: str | os.PathLike[str]) -> Iterator[str]:
    root = Path(directory)
    if not root.is_dir():
        return
    for path in sorted(root.glob("*.jsonl*")):
        with path.open(encoding="utf-8") as handle:
            yield from handle


def _parse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            yield json.loads(line)
        except ValueError:
            continue  # a line cut by a crash mid-write; the rest of the file is fine


def iter_records(directory: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    return _parse(_lines(directory))


def find_trace(directory: str | os.PathLike[str], trace_id: str) -> list[dict[str, Any]]:
    """All spans of one trace across services, ordered by start time."""
    needle = f'"trace_id":"{trace_id.lower()}"'
    matching = (line for line in _lines(directory) if needle in line)  # cheap filter first
    return sorted(_parse(matching), key=lambda s: s["start_unix_nano"])
