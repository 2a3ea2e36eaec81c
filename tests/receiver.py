"""A local HTTP endpoint standing in for the OTel Collector and for Sentry.

It records every request (path, headers, decompressed body) and answers 200, so tests can
decode the real OTLP protobuf and the real Sentry envelopes our SDKs send.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # only if sentry-sdk found it installed

        return brotli.decompress(body)
    return body


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                body = _decode(raw, (self.headers.get("Content-Encoding") or "").lower())
                with outer._lock:
                    outer.requests.append(Received(self.path, {k.lower(): v for k, v in
                                                               self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def at(self, suffix: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path.rstrip("/").endswith(suffix.rstrip("/"))]

    def spans(self, suffix: str = "/v1/traces") -> list[Any]:
        out = []
        for request in self.at(suffix):
            message = ExportTraceServiceRequest.FromString(request.body)
            for rs in message.resource_spans:
                service = next((a.value.string_value for a in rs.resource.attributes
                                if a.key == "service.name"), None)
                for ss in rs.scope_spans:
                    out.extend((service, span) for span in ss.spans)
        return out

    def metrics(self) -> list[Any]:
        out = []
        for request in self.at("/v1/metrics"):
            message = ExportMetricsServiceRequest.FromString(request.body)
            for rm in message.resource_metrics:
                for sm in rm.scope_metrics:
                    out.extend(sm.metrics)
        return out

    def logs(self) -> list[Any]:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

        out = []
        for request in self.at("/v1/logs"):
            message = ExportLogsServiceRequest.FromString(request.body)
            for rl in message.resource_logs:
                for sl in rl.scope_logs:
                    out.extend(sl.log_records)
        return out

    def sentry_events(self) -> list[dict[str, Any]]:
        events = []
        for request in self.at("/envelope/"):
            lines = request.body.split(b"\n")
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if json.loads(header).get("type") == "event" and payload.strip():
                    events.append(json.loads(payload))
        return events

    def all_bytes(self) -> bytes:
        with self._lock:
            return b"\n".join(r.body + json.dumps(r.headers).encode() for r in self.requests)
