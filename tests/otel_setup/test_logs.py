"""Structured logs: trace-correlated, scrubbed, in the local file and over OTLP; no export loops."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from tests.receiver import Receiver

CARD = "4111111111111111"
log = logging.getLogger("services.shop")


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/orders")
    async def order() -> dict[str, str]:
        log.info("checkout with card %s for kim@example.com", CARD, extra={"order_id": "o-1", "cvv": "123"})
        try:
            raise ValueError(f"declined card {CARD}")
        except ValueError:
            log.exception("payment failed")
        return {"ok": "yes"}

    return app


def _lines(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted(directory.glob("*.jsonl")) for line in f.read_text().splitlines()]


async def _call(app: FastAPI) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.post("/v1/orders")


async def test_log_lines_carry_the_request_trace_id_and_are_scrubbed(make_telemetry, tmp_path, capsys) -> None:
    app = _app()
    telemetry, memory = make_telemetry("ecommerce", app=app, log_format="json")
    assert (await _call(app)).status_code == 200
    telemetry.force_flush()
    server = next(s for s in memory.get_finished_spans() if s.name == "POST /v1/orders")
    trace_id = format(server.context.trace_id, "032x")

    lines = [line for line in _lines(tmp_path / "logs") if line["logger"] == "services.shop"]
    assert [line["level"] for line in lines] == ["INFO", "ERROR"]
    assert {line["trace_id"] for line in lines} == {trace_id}
    assert all(line["service.name"] == "ecommerce" and line["span_id"] for line in lines)
    assert lines[0]["order_id"] == "o-1" and lines[0]["cvv"] == "[Filtered]"
    assert "411111******1111" in lines[0]["message"] and "ValueError" in lines[1]["exception"]
    stdout = capsys.readouterr().out
    everything = (tmp_path / "logs" / "ecommerce.jsonl").read_text() + stdout
    assert CARD not in everything and "kim@example.com" not in everything
    assert f'"trace_id": "{trace_id}"' in stdout  # stdout carries the same JSON lines


async def test_logs_reach_an_otlp_endpoint_without_telemetry_loops(make_telemetry) -> None:
    with Receiver() as rx:
        app = _app()
        telemetry, _ = make_telemetry("ecommerce", app=app, otlp_endpoint=f"http://127.0.0.1:{rx.port}")
        await _call(app)
        logging.getLogger("otel_setup").warning("exporter trouble %s", CARD)  # must not be exported
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(rx.logs()) < 2:
            telemetry.force_flush()
            time.sleep(0.1)
        records = rx.logs()
        bodies = [r.body.string_value for r in records]
        assert any(b.startswith("checkout with card 411111******1111") for b in bodies), bodies
        assert not any("exporter trouble" in b for b in bodies)
        assert all(len(r.trace_id) == 16 and any(r.trace_id) for r in records if "checkout" in r.body.string_value)
        assert CARD.encode() not in rx.all_bytes()


def test_console_format_is_readable(make_telemetry, capsys) -> None:
    make_telemetry("ecommerce", log_format="console")
    log.warning("stock low for %s", "p-1")
    out = capsys.readouterr().out
    assert "WARNING" in out and "services.shop stock low for p-1" in out and not out.lstrip().startswith("{")


def test_log_format_off_installs_nothing(make_telemetry, tmp_path) -> None:
    before = list(logging.getLogger().handlers)
    make_telemetry("ecommerce", log_format="off")
    log.warning("nothing")
    assert logging.getLogger().handlers == before
    assert not (tmp_path / "logs").exists()


async def test_failed_log_exports_are_counted_like_spans_and_metrics(make_telemetry) -> None:
    from shopfds.procs import free_port
    from tests.conftest import samples

    def failures(telemetry: Any) -> float:
        return sum(s.value for s in samples(telemetry, "otel_setup_export_failures")
                   if s.name.endswith("_total") and s.labels.get("exporter") == "otlp-logs")

    app = _app()
    refused = f"http://127.0.0.1:{free_port()}"  # nothing listens: every export is refused
    telemetry, _ = make_telemetry("ecommerce", app=app, otlp_endpoint=refused, otlp_timeout_s=0.5)
    before = failures(telemetry)
    await _call(app)
    deadline = time.monotonic() + 10
    while failures(telemetry) == before:
        assert time.monotonic() < deadline, "a refused log export was not counted"
        telemetry.force_flush(1000)
    assert failures(telemetry) > before


def test_a_full_span_queue_is_counted_not_logged_per_span(make_telemetry, tmp_path, monkeypatch) -> None:
    """Regression: with the collector hanging, the SDK built a warning per dropped span (and wrote
    one every 20 s); the loss is the counter's to tell."""
    from otel_setup.guard import STATS
    from tests.reliability.backends import BlackHole

    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "16")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8")
    with BlackHole() as collector:
        telemetry, _ = make_telemetry("ecommerce", otlp_endpoint=collector.url, otlp_timeout_s=0.5,
                                      log_format="json")
        before = STATS.total("otel_setup_spans_dropped_total", exporter="otlp", reason="queue_full")
        for i in range(300):
            with telemetry.tracer.start_as_current_span(f"work {i}"):
                pass
        dropped = STATS.total("otel_setup_spans_dropped_total", exporter="otlp", reason="queue_full") - before
    lines = [line["message"] for line in _lines(tmp_path / "logs")]
    assert dropped > 0  # the queue did fill, and the loss is counted
    assert not [m for m in lines if m.startswith("Queue full")], lines[:5]
