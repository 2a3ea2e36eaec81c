"""/metrics, exemplars, span-derived engine metrics, seed helpers, names and caps."""

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from prometheus_client.parser import text_string_to_metric_families

import otel_setup
from otel_setup.exposition import render
from tests.conftest import samples, scrape
from tests.otel_setup.test_catalog_spec import spec_metrics


def _app():
    app = FastAPI()

    @app.get("/v1/products/{product_id}")
    async def product(product_id: str):
        if product_id == "boom":
            raise RuntimeError("db down")
        return {"id": product_id}

    return app


async def _get(app, *paths, headers=None):
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return [await client.get(p, headers=headers) for p in paths]


def _trace_ids(memory):
    return {trace.format_trace_id(s.context.trace_id) for s in memory.get_finished_spans()}


async def test_http_metrics_use_route_templates_and_exemplars_point_at_server_spans(make_telemetry):
    app = _app()
    telemetry, memory = make_telemetry("ecommerce", app=app)
    await _get(app, "/v1/products/1", "/v1/products/2", "/v1/products/boom", "/no/such/path/123")
    telemetry.force_flush()
    by_labels = {(s.labels["endpoint"], s.labels["status_code"]): s.value
                 for s in samples(telemetry, "ecommerce_http_requests")}
    assert by_labels == {("/v1/products/{product_id}", "200"): 2,
                         ("/v1/products/{product_id}", "500"): 1, ("unmatched", "404"): 1}
    errors = samples(telemetry, "ecommerce_errors")
    assert sorted((s.labels["error_type"], s.value) for s in errors if s.name.endswith("_total")) == [
        ("RuntimeError", 1), ("http_500", 0), ("http_503", 0)]  # known types start at 0
    exemplars = [s.exemplar for s in samples(telemetry, "ecommerce_http_request_duration_seconds")
                 if s.exemplar]
    assert exemplars and {e.labels["trace_id"] for e in exemplars} <= _trace_ids(memory)


async def test_exemplars_survive_repeated_scrapes(make_telemetry):
    app = _app()
    telemetry, _ = make_telemetry("ecommerce", app=app)
    await _get(app, "/v1/products/1")
    first = [s.exemplar for s in samples(telemetry, "ecommerce_http_request_duration_seconds") if s.exemplar]
    second = [s.exemplar for s in samples(telemetry, "ecommerce_http_request_duration_seconds") if s.exemplar]
    assert first and first == second


async def test_plain_text_format_has_no_exemplars_and_is_negotiated(make_telemetry):
    app = _app()
    make_telemetry("ecommerce", app=app)
    await _get(app, "/v1/products/1")
    plain, = await _get(app, "/metrics")
    om, = await _get(app, "/metrics", headers={"Accept": "application/openmetrics-text"})
    assert plain.headers["content-type"].startswith("text/plain") and "trace_id" not in plain.text
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert "trace_id" in om.text and om.text.rstrip().endswith("# EOF")


async def test_engine_spans_become_engine_metrics_with_their_own_exemplar(make_telemetry):
    telemetry, memory = make_telemetry("fds")
    with telemetry.tracer.start_as_current_span("POST /v1/fds/evaluate"):
        for engine, seconds in (("rule", 0.001), ("ml", 0.002), ("cti", 0.06)):
            with telemetry.tracer.start_as_current_span(
                    f"fds.engine.{engine}", attributes={"fds.engine": engine}):
                await asyncio.sleep(seconds)
    telemetry.force_flush()
    cti_span = next(s for s in memory.get_finished_spans() if s.name == "fds.engine.cti")
    cti = samples(telemetry, "fds_cti_engine_duration_seconds")
    assert next(s for s in cti if s.name.endswith("_count")).value == 1
    slow = [s for s in cti if s.exemplar]
    assert len(slow) == 1 and float(slow[0].labels["le"]) >= 0.075
    assert slow[0].exemplar.labels["span_id"] == trace.format_span_id(cti_span.context.span_id)
    engines = {s.labels["engine"] for s in samples(telemetry, "fds_engine_breakdown_seconds")}
    assert engines == {"rule", "ml", "cti"}


async def test_unsampled_engine_spans_still_count_but_give_no_exemplar(make_telemetry):
    telemetry, memory = make_telemetry("fds", traces_sampler="always_off")
    with telemetry.tracer.start_as_current_span("fds.engine.rule", attributes={"fds.engine": "rule"}):
        pass
    telemetry.force_flush()
    rule = samples(telemetry, "fds_rule_engine_duration_seconds")
    assert next(s for s in rule if s.name.endswith("_count")).value == 1
    assert not [s for s in rule if s.exemplar] and not memory.get_finished_spans()


async def test_seed_helpers_record_their_metrics(make_telemetry):
    telemetry, _ = make_telemetry("ecommerce")
    otel_setup.record_transaction(status="completed", amount=50000)
    otel_setup.record_transaction(status="failed", amount=7000)
    otel_setup.record_fds_evaluation(result="low_risk", duration=0.075)

    @otel_setup.track_transaction_duration("payment")
    async def pay():
        return "ok"

    @otel_setup.track_transaction_duration("refund")
    def refund():
        raise ValueError("no")

    assert await pay() == "ok"
    with pytest.raises(ValueError):
        refund()
    fams = scrape(telemetry)
    assert {s.labels["status"]: s.value for s in fams["ecommerce_transactions"].samples
            if s.name.endswith("_total")} == {"completed": 1, "failed": 1}
    assert fams["ecommerce_transaction_amount"].samples[0].value == 50000
    durations = {s.labels["transaction_type"] for s in
                 fams["ecommerce_transaction_processing_duration_seconds"].samples}
    assert durations == {"payment", "refund"}
    fds = fams["ecommerce_fds_evaluation_duration_seconds"].samples
    assert next(s for s in fds if s.name.endswith("_sum")).value == pytest.approx(0.075)


def test_helpers_are_noops_before_configure(make_telemetry):
    assert otel_setup.current() is None
    assert otel_setup.record_transaction("completed", 1) is None
    assert otel_setup.record_http_request("GET", "/x", 200, 0.01) is None
    assert otel_setup.record_fds_evaluation("low_risk", 0.01) is None

    @otel_setup.track_transaction_duration("payment")
    def pay(amount):
        return amount * 2

    @otel_setup.track_transaction_duration("refund")
    async def refund():
        raise ValueError("declined")

    assert pay(21) == 42 and pay.__name__ == "pay"  # the decorated function is untouched
    with pytest.raises(ValueError, match="declined"):
        asyncio.run(refund())
    assert otel_setup.current() is None  # no helper configured a Telemetry on its own
    # Nothing was kept for later: the first Telemetry starts from zero (only the series that
    # start at 0 are there, each at 0; otel_setup_* counters are the process's own).
    telemetry, _ = make_telemetry("ecommerce")
    recorded = {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in scrape(telemetry).values() if family.name.startswith("ecommerce_")
                for s in family.samples}
    assert ("ecommerce_transaction_amount_total", ()) in recorded
    assert {key: value for key, value in recorded.items() if value != 0} == {}


@pytest.mark.parametrize("service", ["ecommerce", "fds"])
def test_every_spec_name_comes_out_exactly_with_its_spec_type(make_telemetry, service):
    """SPEC.md's metrics of a service, recorded through its Telemetry's instruments, come out of
    the text exposition under the SPEC's name with the SPEC's type (no unit suffix or _total added)."""
    spec = {name: entry for name, entry in spec_metrics().items() if name.startswith(f"{service}_")}
    telemetry, _ = make_telemetry(service)
    for name, (_, labels) in spec.items():
        instrument = telemetry.instruments[name]
        attributes = {label: "x" for label in labels}
        if hasattr(instrument, "record"):
            instrument.record(0.01, attributes)
        elif hasattr(instrument, "set"):
            instrument.set(0.5, attributes)
        elif hasattr(instrument, "add"):
            instrument.add(1, attributes)
        elif name.endswith("_http_requests_in_progress"):
            telemetry.in_progress["GET"] = 1  # observed at collect time, like fds_evaluations_in_progress
    body = render(telemetry.registry, "text/plain")[0].decode()
    types = {line.split()[2]: line.split()[3] for line in body.splitlines() if line.startswith("# TYPE")}
    sample_names = {s.name for family in text_string_to_metric_families(body) for s in family.samples}
    spec_type = {"counter": "counter", "histogram": "histogram", "gauge": "gauge",
                 "summary-style quantiles": "gauge"}
    for name, (kind, _) in spec.items():
        assert types.get(name) == spec_type[kind], name  # the text format keeps _total on the family name
        assert (f"{name}_count" if kind == "histogram" else name) in sample_names, name


def test_cardinality_is_capped_per_metric(make_telemetry):
    telemetry, _ = make_telemetry("ecommerce", metric_cardinality_limit=20)
    for i in range(200):
        otel_setup.record_http_request("GET", f"/raw/{i}", 200)
    series = [s for s in samples(telemetry, "ecommerce_http_requests") if s.name.endswith("_total")]
    assert len(series) <= 21
    overflow = [s for s in series if s.labels.get("otel_metric_overflow") == "true"]
    assert overflow and sum(s.value for s in series) == 200


def test_configure_is_idempotent(make_telemetry):
    app = _app()
    telemetry, _ = make_telemetry("ecommerce", app=app)
    assert otel_setup.configure("ecommerce", app=app) is telemetry
    assert sum(1 for r in app.routes if getattr(r, "path", "") == "/metrics") == 1


async def test_sdk_disabled_serves_requests_and_empty_metrics(make_telemetry):
    app = _app()
    _, memory = make_telemetry("ecommerce", app=app, sdk_disabled=True)
    ok, metrics = await _get(app, "/v1/products/1", "/metrics")
    assert ok.status_code == 200 and metrics.status_code == 200
    assert "ecommerce_http_requests_total" not in metrics.text and not memory.get_finished_spans()


async def test_server_spans_only_no_per_message_receive_send_spans(make_telemetry):
    app = _app()
    telemetry, memory = make_telemetry("ecommerce", app=app)
    await _get(app, "/v1/products/1")
    telemetry.force_flush()
    names = [s.name for s in memory.get_finished_spans()]
    assert names == ["GET /v1/products/{product_id}"]


def test_resource_attributes_and_standard_variables(make_telemetry, monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "shopfds-ecommerce-eu")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "cloud.region=ap-northeast-2,deployment.environment=staging")
    monkeypatch.setenv("APP_VERSION", "1.4.0")
    settings = otel_setup.load_settings(trace_store_dir="")
    telemetry = otel_setup.configure("ecommerce", settings=settings)
    attrs = telemetry.resource.attributes
    assert attrs["service.name"] == "shopfds-ecommerce-eu"
    assert attrs["service.version"] == "1.4.0"
    assert attrs["deployment.environment"] == "staging"  # the deployment's value wins
    assert attrs["cloud.region"] == "ap-northeast-2"
    assert len(str(attrs["service.instance.id"])) == 36
    assert telemetry.prefix == "ecommerce"  # metric names do not follow the reported name


async def test_in_progress_gauge_counts_requests_being_served(make_telemetry):
    app = FastAPI()
    telemetry, _ = make_telemetry("ecommerce", app=app)

    @app.get("/inside")
    async def inside():
        return {s.labels["method"]: s.value for s in samples(telemetry, "ecommerce_http_requests_in_progress")}

    response, = await _get(app, "/inside")
    assert response.json() == {"GET": 1}
    after = {s.labels["method"]: s.value for s in samples(telemetry, "ecommerce_http_requests_in_progress")}
    assert after == {"GET": 0}


async def test_nested_router_prefixes_are_in_the_endpoint_label(make_telemetry):
    # FastAPI includes routers lazily: the matched route of a router nested in a prefixed
    # router knows only its own prefix. The label must still be the whole template.
    from fastapi import APIRouter

    inner = APIRouter(prefix="/orders")

    @inner.get("/{order_id}")
    async def get_order(order_id: int) -> dict[str, int]:
        return {"order_id": order_id}

    outer = APIRouter(prefix="/v1")
    outer.include_router(inner)
    app = FastAPI()
    app.include_router(outer)
    telemetry, _ = make_telemetry("ecommerce", app=app)
    await _get(app, "/v1/orders/41", "/v1/orders/42")
    endpoints = {s.labels["endpoint"] for s in samples(telemetry, "ecommerce_http_requests")}
    assert endpoints == {"/v1/orders/{order_id}"}
