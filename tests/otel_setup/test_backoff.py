"""A backend known to be down costs nothing per batch or event, and every loss is still counted.

Real exporters against real sockets: an OTLP span exporter in front of a server answering 400
(a failure the exporter does not retry) and sentry-sdk's transport in front of a port that
resets every connection. After the first failure the next batches and events are dropped
without a request or a connection (the servers count what reached them), counted as failed
exports and dropped spans (``backend_down``) or lost events (``network_error``); once the pause
is over one probe goes through again.
"""

from __future__ import annotations

import socket
import threading
import time

import sentry_sdk
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_setup.backoff import DownGate
from otel_setup.guard import STATS
from otel_setup.otlp import http_span_exporter
from otel_setup.sentry_transport import CountingTransport
from otel_setup.spans import CountingExporter
from tests.reliability.backends import StatusServer


def _spans(count: int) -> list:  # type: ignore[type-arg]
    tracer = TracerProvider().get_tracer("test")
    spans = []
    for i in range(count):
        with tracer.start_as_current_span(f"s{i}") as span:
            spans.append(span)
    return spans


def test_span_batches_are_not_sent_while_the_collector_is_known_down() -> None:
    with StatusServer(400) as collector:
        exporter = CountingExporter(http_span_exporter(f"{collector.url}/v1/traces", {}, 2.0), "gate-test")
        exporter.gate = DownGate(initial=0.3, cap=0.3)
        before_failed = STATS.total("otel_setup_export_failures_total", exporter="gate-test")
        before_down = STATS.total("otel_setup_spans_dropped_total", exporter="gate-test", reason="backend_down")
        results = [exporter.export(_spans(3)) for _ in range(5)]
        reached = collector.requests
        deadline = time.monotonic() + 5
        while collector.requests == reached:  # after the pause: a probe reaches the collector
            assert time.monotonic() < deadline, "no probe after the pause"
            exporter.export(_spans(1))
            time.sleep(0.05)
        exporter.shutdown()
    assert results == [SpanExportResult.FAILURE] * 5
    assert reached == 1  # only the first batch was encoded and sent
    assert STATS.total("otel_setup_export_failures_total", exporter="gate-test") - before_failed >= 5
    assert STATS.total("otel_setup_spans_dropped_total", exporter="gate-test", reason="backend_down") \
        - before_down >= 12


class _Resetting:
    """Accepts each connection and resets it at once: a Sentry the network cannot reach."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()

    def close(self) -> None:
        self._sock.close()


def test_sentry_events_are_not_sent_while_sentry_is_known_down() -> None:
    sentry = _Resetting()
    before = STATS.total("otel_setup_sentry_events_dropped_total", reason="network_error")
    client = sentry_sdk.Client(dsn=f"http://public@127.0.0.1:{sentry.port}/1", transport=CountingTransport,
                               default_integrations=False)
    try:
        client.capture_event({"message": "first", "level": "error"})
        client.flush(timeout=5)
        first = sentry.accepted
        for i in range(20):
            client.capture_event({"message": f"event {i}", "level": "error"})
        client.flush(timeout=5)
        later = sentry.accepted - first
    finally:
        client.close(timeout=2)
        sentry.close()
    assert first >= 1  # the first event really tried (urllib3 retries included)
    assert later == 0  # the next 20 within the pause: no connection at all
    assert STATS.total("otel_setup_sentry_events_dropped_total", reason="network_error") - before >= 21


def test_the_pause_doubles_is_jittered_capped_and_a_success_reopens() -> None:
    now = [0.0]
    gate = DownGate(initial=1.0, cap=8.0, clock=lambda: now[0], jitter=lambda: 1.0)
    pauses = []
    for _ in range(6):
        gate.failed()
        until = gate._shut_until
        assert not gate.open()
        pauses.append(until - now[0])
        now[0] = until
        assert gate.open()
    gate.succeeded()
    gate.failed()
    assert pauses == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert gate._shut_until - now[0] == 1.0  # back to the first pause after a success
