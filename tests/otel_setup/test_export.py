"""Real OTLP protobuf and real Sentry envelopes, received by a local endpoint."""

import time

import httpx
import pytest
import sentry_sdk
from fastapi import FastAPI, Request

import otel_setup
from otel_setup.trace_store import iter_records
from tests.receiver import Receiver

CARD = "4111111111111111"
CVV = "737"
PASSWORD = "Tr0ub4dor&3"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTQyIn0.c2lnbmF0dXJlLWJ5dGVz"
EMAIL = "victim.person@example.com"
PII = (CARD, PASSWORD, JWT, EMAIL, f'"cvv": "{CVV}"')


def _payment_app():
    app = FastAPI()

    @app.post("/v1/orders")
    async def checkout(request: Request):
        raw = await request.body()  # a frame local Sentry would otherwise ship as-is
        payload = await request.json()
        otel_setup.add_breadcrumb(f"checkout by {payload['email']}", category="payment",
                                  data={"card_number": payload["card_number"]})
        raise RuntimeError(f"gateway rejected card {payload['card_number']} ({len(raw)} bytes)")

    return app


async def _checkout(app):
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        return await client.post(
            "/v1/orders",
            json={"card_number": CARD, "cvv": CVV, "password": PASSWORD, "email": EMAIL},
            headers={"Authorization": f"Bearer {JWT}"},
        )


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _assert_no_pii(blob: bytes):
    for secret in PII:
        assert secret.encode() not in blob, f"{secret!r} leaked"


async def test_sentry_gets_linked_errors_and_otlp_traces_without_collector(make_telemetry, tmp_path):
    with Receiver() as rx:
        app = _payment_app()
        telemetry, _ = make_telemetry(
            "ecommerce", app=app, sentry_dsn=f"http://publickey@127.0.0.1:{rx.port}/1")
        response = await _checkout(app)
        assert response.status_code == 500
        sentry_sdk.flush(5)
        telemetry.force_flush()

        assert _wait_for(lambda: rx.sentry_events() and rx.spans("/integration/otlp/v1/traces"))
        otlp = rx.at("/api/1/integration/otlp/v1/traces")
        assert "sentry_key=publickey" in otlp[0].headers["x-sentry-auth"]
        server = next(span for _, span in rx.spans("/integration/otlp/v1/traces")
                      if span.name == "POST /v1/orders")
        event = rx.sentry_events()[0]
        assert event["contexts"]["trace"]["trace_id"] == server.trace_id.hex()
        assert event["contexts"]["trace"]["span_id"] == server.span_id.hex()
        assert event["exception"]["values"][0]["value"].startswith("gateway rejected card 411111")
        assert any(c.get("category") == "payment" for c in event["breadcrumbs"]["values"])
        assert not rx.at("/v1/metrics")  # no collector: metrics stay on /metrics

        # the exception message reached the span event, the trace store and Sentry: all scrubbed
        store = repr(list(iter_records(tmp_path / "traces"))).encode()
        assert b"411111******1111" in store
        _assert_no_pii(rx.all_bytes() + store)


async def test_collector_gets_traces_and_metrics_with_exemplars(make_telemetry):
    with Receiver() as rx:
        app = _payment_app()
        telemetry, _ = make_telemetry(
            "ecommerce", app=app, otlp_endpoint=rx.url, metric_export_interval_ms=300,
            sentry_dsn=f"http://publickey@127.0.0.1:{rx.port}/1", sentry_traces_via_collector=True)
        await _checkout(app)
        telemetry.force_flush()
        sentry_sdk.flush(5)

        def exemplar_points():
            return [(m.name, e) for m in rx.metrics() if m.HasField("histogram")
                    for p in m.histogram.data_points for e in p.exemplars]

        assert _wait_for(lambda: exemplar_points() and rx.spans())
        span_ids = {(s.trace_id, s.span_id) for _, s in rx.spans()}
        names = {n for n, _ in exemplar_points()}
        assert "ecommerce_http_request_duration_seconds" in names
        assert all((e.trace_id, e.span_id) in span_ids for _, e in exemplar_points())
        units = {m.name: m.unit for m in rx.metrics()}
        assert units["ecommerce_http_request_duration_seconds"] == "s"
        assert units["ecommerce_http_requests_total"] == ""
        # the collector forwards traces to Sentry (its overlay): nothing goes there directly
        assert not rx.at("/integration/otlp/v1/traces")
        assert rx.sentry_events()
        _assert_no_pii(rx.all_bytes())


async def test_w3c_traceparent_is_honoured_with_sentry_on(make_telemetry):
    with Receiver() as rx:
        app = FastAPI()

        @app.get("/ping")
        async def ping():
            return {}

        telemetry, memory = make_telemetry("fds", app=app,
                                           sentry_dsn=f"http://k@127.0.0.1:{rx.port}/1")
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fds") as client:
            await client.get("/ping", headers={"traceparent": parent})
        telemetry.force_flush()
        server = next(s for s in memory.get_finished_spans() if s.name == "GET /ping")
        assert f"{server.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
        assert f"{server.parent.span_id:016x}" == "b7ad6b7169203331"


@pytest.mark.parametrize("dsn", ["not a dsn", "http://127.0.0.1/"])
async def test_bad_dsn_warns_and_the_service_runs(make_telemetry, dsn):
    app = _payment_app()
    telemetry, _ = make_telemetry("ecommerce", app=app, sentry_dsn=dsn)
    assert telemetry.sentry_enabled is False
    assert (await _checkout(app)).status_code == 500
