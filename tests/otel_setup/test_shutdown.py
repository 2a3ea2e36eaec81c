"""With the collector or Sentry dead, requests still succeed and shutdown stays bounded."""

import socket
import threading
import time

import httpx
import pytest
from fastapi import FastAPI

from otel_setup.guard import STATS
from tests.procs import free_port


class BlackHole:
    """Accepts TCP connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture(params=["refused", "black_hole"])
def dead_endpoint(request):
    if request.param == "refused":
        yield f"http://127.0.0.1:{free_port()}"
        return
    hole = BlackHole()
    yield f"http://127.0.0.1:{hole.port}"
    hole.close()


async def test_dead_collector_and_sentry_do_not_break_requests_or_shutdown(make_telemetry, dead_endpoint):
    app = FastAPI()

    @app.get("/ok")
    async def ok():
        return {"ok": True}

    host = dead_endpoint.removeprefix("http://")
    telemetry, _ = make_telemetry("ecommerce", app=app, otlp_endpoint=dead_endpoint,
                                  metric_export_interval_ms=200, otlp_timeout_s=2,
                                  sentry_dsn=f"http://key@{host}/1")
    failures_before = STATS.total("otel_setup_export_failures_total", exporter="otlp")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        statuses = {(await client.get("/ok")).status_code for _ in range(50)}
    assert statuses == {200}
    time.sleep(0.3)
    started = time.monotonic()
    telemetry.shutdown()
    elapsed = time.monotonic() - started
    assert elapsed <= telemetry.settings.shutdown_timeout + 1.0, f"shutdown took {elapsed:.1f}s"
    assert STATS.total("otel_setup_export_failures_total", exporter="otlp") > failures_before


def test_failed_metric_exports_are_counted(make_telemetry):
    telemetry, _ = make_telemetry("ecommerce", otlp_endpoint=f"http://127.0.0.1:{free_port()}",
                                  metric_export_interval_ms=60_000, otlp_timeout_s=1)
    before = STATS.total("otel_setup_export_failures_total", exporter="otlp-metrics")
    telemetry.instruments["ecommerce_user_registrations_total"].add(1)
    telemetry.meter_provider.force_flush(timeout_millis=5_000)  # one export, refused
    assert STATS.total("otel_setup_export_failures_total", exporter="otlp-metrics") == before + 1
