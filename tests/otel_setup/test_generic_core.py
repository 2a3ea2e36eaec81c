"""The generic core serves a service the shop's catalog does not know: its own metric specs and
span-derived metrics, given to ``configure``."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

import otel_setup
from otel_setup.settings import TelemetrySettings
from otel_setup.specs import SELF, SpanMetric, counter, histogram, http_metrics
from tests.conftest import samples

JOBS = SpanMetric(attribute="billing.job", histograms={"invoice": "billing_invoice_seconds"},
                  breakdown="billing_job_seconds", label="job")
SPECS = http_metrics("billing") + SELF + (
    counter("billing_invoices_total", "Invoices sent", "currency"),
    histogram("billing_invoice_seconds", "Invoice job time"),
    histogram("billing_job_seconds", "Job time by job", "job"),
)


async def test_a_service_outside_the_catalog_gets_its_own_metrics_and_span_metrics(tmp_path):
    app = FastAPI()
    telemetry = otel_setup.configure(
        "billing", app=app, metrics=SPECS, span_metrics=(JOBS,),
        settings=TelemetrySettings(trace_store_dir=str(tmp_path / "traces"), traces_sampler="always_off"))

    @app.post("/v1/invoices/{invoice_id}")
    async def send(invoice_id: int) -> dict[str, int]:
        for job in ("invoice", "reminder"):
            with telemetry.tracer.start_as_current_span(f"billing.{job}", attributes={"billing.job": job}):
                pass
        telemetry.instruments["billing_invoices_total"].add(1, {"currency": "KRW"})
        return {"id": invoice_id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/v1/invoices/7")).status_code == 200

    requests = {(s.labels["endpoint"], s.value) for s in samples(telemetry, "billing_http_requests")
                if s.name.endswith("_total")}
    assert requests == {("/v1/invoices/{invoice_id}", 1.0)}
    assert [s.value for s in samples(telemetry, "billing_invoices") if s.name.endswith("_total")] == [1.0]
    # Sampling drops every trace, yet the spans carrying the attribute were recorded for the metrics.
    counts = {s.labels.get("job"): s.value for s in samples(telemetry, "billing_job_seconds")
              if s.name.endswith("_count")}
    assert counts == {"invoice": 1.0, "other": 1.0}
    assert [s.value for s in samples(telemetry, "billing_invoice_seconds") if s.name.endswith("_count")] == [1.0]
    assert not samples(telemetry, "ecommerce_http_requests")  # no shop metric on a service outside the shop
