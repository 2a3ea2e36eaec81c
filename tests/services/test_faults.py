"""Faults switched on at run time change what the services do, and what their telemetry shows."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ..conftest import samples
from .conftest import Backend, serve
from .ecommerce.conftest import checkout_body, fill_cart, make_app, shopper
from .fds.conftest import make_fds, staff, txn


async def test_cti_slow_breaks_the_sla_and_the_cti_span_shows_why(backend: Backend, tmp_path: Path) -> None:
    app = make_fds(backend, tmp_path, cti_slow_fault_share=1.0)  # every lookup stalls: one request shows it
    memory = InMemorySpanExporter()
    app.state.telemetry.add_span_exporter("memory", memory)
    async with serve(app) as client:
        before = (await client.post("/v1/fds/evaluate", json=txn())).json()
        on = await client.put("/internal/faults/cti-slow", json={"value": "150ms"}, headers=staff(app, "service"))
        assert on.status_code == 200
        slow = (await client.post("/v1/fds/evaluate", json=txn())).json()
    app.state.telemetry.force_flush()
    assert slow["duration_ms"] >= 150  # the stall is a lower bound the fault sets
    violations = sum(ev["duration_ms"] > 100 for ev in (before, slow))
    assert [s.value for s in samples(app.state.telemetry, "fds_sla_violations") if s.name.endswith("_total")] == [
        violations]
    engine = next(s for s in memory.get_finished_spans()
                  if s.name == "fds.engine.cti" and s.context.trace_id != 0 and s.end_time - s.start_time >= 150e6)
    assert engine.attributes["fds.engine"] == "cti"


async def test_ml_down_makes_decisions_rules_only_and_degraded(backend: Backend, tmp_path: Path) -> None:
    import httpx

    from otel_setup.settings import TelemetrySettings
    from services.common.inprocess import serve as serve_ml
    from services.ml.app import create_app as ml_app
    from services.ml.settings import Settings as MlSettings

    ml = ml_app(MlSettings(**backend.overrides), telemetry_settings=TelemetrySettings(
        trace_store_dir=str(tmp_path / "ml-traces")))
    async with serve_ml(ml):
        app = make_fds(backend, tmp_path, ml_transport=httpx.ASGITransport(app=ml), ml_url="http://ml")
        async with serve(app) as client:
            healthy = (await client.post("/v1/fds/evaluate", json=txn())).json()
            await client.put("/internal/faults/ml-down", json={}, headers=staff(app, "service"))
            down = (await client.post("/v1/fds/evaluate", json=txn())).json()
    assert healthy["engines"]["ml"]["status"] == "ok" and not healthy["degraded"]
    assert down["engines"]["ml"]["status"] == "unavailable" and down["degraded"]


async def test_payment_errors_fail_payments_and_count_as_errors(backend: Backend, tmp_path: Path) -> None:
    app = make_app(backend, tmp_path, fds_fail_policy="approve")
    async with serve(app) as client:
        auth = await shopper(client)
        await client.put("/internal/faults/payment-errors", json={"value": "100%"}, headers=_service(app))
        await fill_cart(client, auth, (1, 1))
        order = (await client.post("/v1/orders", json=checkout_body(), headers=auth)).json()
    assert order["status"] == "cancelled" and order["cancel_reason"] == "payment_failed"
    errors = {s.labels["error_type"]: s.value for s in samples(app.state.telemetry, "ecommerce_errors")
              if s.name.endswith("_total")}
    assert errors["payment_gateway"] == 1


def _service(app) -> dict[str, str]:
    from services.common.security import issue_token

    return {"Authorization": f"Bearer {issue_token(app.state.settings.jwt_secret, 's', 'service', 60)}"}
