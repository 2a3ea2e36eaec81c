"""The seed's Sentry helpers, sending real envelopes to a local endpoint."""

import sentry_sdk

import otel_setup
from tests.otel_setup.test_export import _wait_for
from tests.receiver import Receiver


def _events(rx, count):
    sentry_sdk.flush(5)
    assert _wait_for(lambda: len(rx.sentry_events()) >= count)
    return rx.sentry_events()


def test_fds_exception_is_grouped_by_engine_and_linked_to_the_span(make_telemetry):
    with Receiver() as rx:
        telemetry, memory = make_telemetry("fds", sentry_dsn=f"http://k@127.0.0.1:{rx.port}/1")
        with telemetry.tracer.start_as_current_span("fds.engine.ml", attributes={"fds.engine": "ml"}):
            otel_setup.add_fds_breadcrumb("ml scoring started", engine="ml", risk_score=12.0)
            event_id = otel_setup.capture_fds_exception(
                TimeoutError("model server timed out"), transaction_id="txn-1", risk_score=42.0,
                engine="ml")
        telemetry.force_flush()
        event, = _events(rx, 1)
    span = memory.get_finished_spans()[0]
    assert event["event_id"] == event_id
    assert event["tags"]["fds.engine"] == "ml" and event["tags"]["transaction_id"] == "txn-1"
    assert event["fingerprint"] == ["fds-exception", "ml", "TimeoutError"]
    assert event["contexts"]["fds"]["risk_score"] == 42.0
    assert event["contexts"]["trace"]["trace_id"] == f"{span.context.trace_id:032x}"
    assert event["breadcrumbs"]["values"][-1]["category"] == "fds.ml"
    assert span.attributes["sentry.event_id"] == event_id
    assert span.events[0].name == "exception"


def test_exception_with_context_keeps_only_the_user_id_and_scrubs_context(make_telemetry):
    with Receiver() as rx:
        make_telemetry("ecommerce", sentry_dsn=f"http://k@127.0.0.1:{rx.port}/1")
        otel_setup.capture_exception_with_context(
            ValueError("payment failed"), user_id=7, transaction_id="ord-9", payment_method="card",
            card_number="4111111111111111", order_amount=50000)
        event, = _events(rx, 1)
    assert event["user"] == {"id": "7"}
    assert event["tags"]["transaction_id"] == "ord-9"
    details = event["contexts"]["details"]
    assert details["card_number"] == "411111******1111" and details["order_amount"] == 50000


def test_performance_issue_is_a_warning_and_info_events_are_dropped(make_telemetry):
    with Receiver() as rx:
        make_telemetry("fds", sentry_dsn=f"http://k@127.0.0.1:{rx.port}/1")
        sentry_sdk.capture_message("routine info", level="info")
        event_id = otel_setup.capture_fds_performance_issue(125.5, 100.0, transaction_id="txn-2", engine="cti")
        events = _events(rx, 1)
    assert [(e["event_id"], e["level"]) for e in events] == [(event_id, "warning")]
    assert events[0]["fingerprint"] == ["fds-sla-violation", "cti"]
    assert events[0]["message"] == "FDS evaluation 125.5 ms over 100 ms SLA (engine cti)"
    assert events[0]["contexts"]["fds_performance"] == {"duration_ms": 125.5, "threshold_ms": 100.0, "engine": "cti"}


def test_start_transaction_is_an_otel_span_with_the_sentry_op(make_telemetry):
    telemetry, memory = make_telemetry("ecommerce")
    with otel_setup.start_transaction("process_order", op="order") as span:
        assert span.is_recording()
    telemetry.force_flush()
    finished, = memory.get_finished_spans()
    assert finished.name == "process_order" and finished.attributes["sentry.op"] == "order"
