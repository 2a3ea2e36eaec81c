"""What the FDS tells its operators: engine spans under the request, metrics, SLA violations."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import samples

from ..conftest import Backend, serve
from .conftest import make_fds, provider, staff, txn


async def test_engine_spans_are_children_of_the_request(backend: Backend, tmp_path) -> None:
    app = make_fds(backend, tmp_path)
    memory = InMemorySpanExporter()
    app.state.telemetry.add_span_exporter("memory", memory)
    async with serve(app) as client:
        ev = (await client.post("/v1/fds/evaluate", json=txn(email="x@mailinator.com"))).json()
    app.state.telemetry.force_flush()
    spans = memory.get_finished_spans()
    server = next(s for s in spans if s.name == "POST /v1/fds/evaluate")
    engines = {s.name: s for s in spans if s.name.startswith("fds.engine.")}
    assert set(engines) == {"fds.engine.rule", "fds.engine.ml", "fds.engine.cti"}
    for name, span in engines.items():
        assert span.parent is not None and span.parent.span_id == server.context.span_id
        assert span.context.trace_id == server.context.trace_id
        assert span.attributes["fds.engine"] == name.rsplit(".", 1)[1]
    assert engines["fds.engine.ml"].attributes["fds.status"] == "unavailable"
    assert all(isinstance(engines[f"fds.engine.{e}"].attributes["fds.score"], (int, float)) for e in ("rule", "cti"))
    # fds.engine is an attribute, so no attribute may use it as a namespace (fds.engine.score).
    assert not [k for s in spans for k in (s.attributes or {}) if k.startswith("fds.engine.")]
    aggregates = next(s for s in spans if s.name == "fds.aggregates")  # the cache step, before the engines
    assert aggregates.parent is not None and aggregates.parent.span_id == server.context.span_id
    assert all(aggregates.end_time <= span.start_time for span in engines.values())
    attrs = server.attributes
    assert attrs["fds.transaction_id"] == ev["transaction_id"]
    assert (attrs["fds.risk_score"], attrs["fds.decision"], attrs["fds.risk_level"]) == (
        ev["risk_score"], "additional_auth", "medium")
    assert attrs["fds.degraded"] is True


async def test_evaluation_metrics(backend: Backend, tmp_path) -> None:
    app = make_fds(backend, tmp_path)
    async with serve(app) as client:
        durations = []  # ms, as the FDS measured them: SLA violations and quantiles must agree
        for changes in ({}, {"user_id": "u2"}, {"email": "x@mailinator.com", "user_id": "u3"},
                        {"user_id": "user-blocked-demo"}):
            response = await client.post("/v1/fds/evaluate", json=txn(**changes))
            assert response.status_code == 200
            durations.append(response.json()["duration_ms"])
        scrape = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    telemetry = app.state.telemetry

    def values(family: str, sample: str | None = None) -> dict[tuple[tuple[str, str], ...], float]:
        return {tuple(sorted(s.labels.items())): s.value for s in samples(telemetry, family)
                if sample is None or s.name == sample}

    assert values("fds_evaluations", "fds_evaluations_total") == {
        (("decision", "approve"), ("risk_level", "low")): 2.0,
        (("decision", "additional_auth"), ("risk_level", "medium")): 1.0,
        (("decision", "block"), ("risk_level", "blocked")): 1.0}
    assert values("fds_decisions", "fds_decisions_total")[(("decision", "approve"),)] == 2.0
    assert values("fds_risk_level_distribution", "fds_risk_level_distribution_total")[
        (("risk_level", "blocked"),)] == 1.0
    assert values("fds_risk_factors_triggered", "fds_risk_factors_triggered_total") == {
        (("factor", "cti_disposable_email"),): 1.0, (("factor", "blocklist_user"),): 1.0}
    assert values("fds_additional_auth_required", "fds_additional_auth_required_total") == {(): 1.0}
    assert values("fds_blocked_transactions", "fds_blocked_transactions_total") == {(("reason", "blocklist"),): 1.0}
    assert values("fds_evaluation_duration_seconds", "fds_evaluation_duration_seconds_count") == {(): 4.0}
    assert values("fds_risk_score_distribution", "fds_risk_score_distribution_count") == {(): 4.0}
    assert values("fds_evaluations_in_progress") == {(): 0.0}
    assert values("fds_sla_violations", "fds_sla_violations_total") == {(): float(sum(d > 100 for d in durations))}
    quantiles = values("fds_evaluation_latency_summary")
    assert sorted(dict(k)["quantile"] for k in quantiles) == ["0.5", "0.9", "0.95", "0.99"]
    # The window reports a quantile at its 5 %-wide bucket's middle.
    assert all(min(durations) / 1050 <= v <= max(durations) / 950 for v in quantiles.values()), (quantiles, durations)
    # Span-derived, one per engine per evaluation.
    for engine in ("rule", "ml", "cti"):
        assert values(f"fds_{engine}_engine_duration_seconds", f"fds_{engine}_engine_duration_seconds_count") == {
            (): 4.0}
    assert scrape.status_code == 200 and 'fds_engine_breakdown_seconds_count{engine="cti"} 4' in scrape.text


async def test_slow_evaluation_is_an_sla_violation(backend: Backend, tmp_path) -> None:
    # A CTI budget above the SLA and a provider slower than both: the evaluation takes > 100 ms.
    async with provider(delay=0.3) as slow:
        app = make_fds(backend, tmp_path, cti_provider_url=slow.url, cti_provider_timeout_seconds=1.0,
                       cti_timeout_seconds=0.15)
        memory = InMemorySpanExporter()
        app.state.telemetry.add_span_exporter("memory", memory)
        async with serve(app) as client:
            ev = (await client.post("/v1/fds/evaluate", json=txn())).json()
            stats = (await client.get("/v1/fds/stats", headers=staff(app))).json()
    assert ev["duration_ms"] > 100 and ev["engines"]["cti"]["status"] == "timeout"
    assert [s.value for s in samples(app.state.telemetry, "fds_sla_violations")
            if s.name == "fds_sla_violations_total"] == [1.0]
    assert stats["sla_violations"] == 1
    app.state.telemetry.force_flush()
    server = next(s for s in memory.get_finished_spans() if s.name == "POST /v1/fds/evaluate")
    assert server.attributes["fds.sla_violation"] is True
    cti = next(s for s in memory.get_finished_spans() if s.name == "fds.engine.cti")
    assert cti.status.status_code.name == "ERROR"
    assert [e.name for e in cti.events] == ["exception"]


def _summary(app: Any) -> dict[str, float]:
    return {s.labels["quantile"]: s.value for s in samples(app.state.telemetry, "fds_evaluation_latency_summary")}


def _window(app: Any) -> dict[str, float]:
    return {str(q): seconds for q, seconds in app.state.evaluation.metrics.latency.quantiles().items()}


async def test_latency_summary_is_read_from_the_window_when_metrics_are_collected(tmp_path) -> None:
    # Two FDS apps in one process (two workers' worth) share one Telemetry and its instruments,
    # each with its own window: the gauge reports the window that last took an evaluation, whole.
    first, second = (make_fds(Backend("embedded", {"data_dir": str(tmp_path / name), "redis_url": None,
                                                   "database_url": None}), tmp_path)
                     for name in ("first", "second"))
    assert first.state.telemetry is second.state.telemetry
    async with serve(first) as one, serve(second) as other:
        assert _summary(first) == {}  # absent while no window holds an evaluation
        for user in ("u1", "u2", "u3"):
            assert (await one.post("/v1/fds/evaluate", json=txn(user_id=user))).status_code == 200
        assert set(_summary(first)) == {"0.5", "0.9", "0.95", "0.99"}
        assert _summary(first) == _window(first)
        # Computed at collect time: a sample the window took since is in the next scrape.
        first.state.evaluation.metrics.latency.add(5.0)
        assert _summary(first)["0.99"] == _window(first)["0.99"] > 4.5
        assert (await other.post("/v1/fds/evaluate", json=txn(user_id="u4"))).status_code == 200
        assert _summary(first) == _window(second) != _window(first)  # the second window, not a mix
        assert (await one.post("/v1/fds/evaluate", json=txn(user_id="u5"))).status_code == 200
        assert _summary(second) == _window(first)
        text = (await one.get("/metrics")).text
    assert "# TYPE fds_evaluation_latency_summary gauge" in text
    assert 'fds_evaluation_latency_summary{quantile="0.99"}' in text
